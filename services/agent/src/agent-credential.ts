import { readFile } from "node:fs/promises";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { RegistryService } from "@otto/gen/v1/registry_service_pb";
import { clientFor } from "@otto/kit/clients";
import { retry } from "@otto/kit/service";
import { writeFileAtomically } from "@otto/kit/atomic-file";
import type { Logger } from "@otto/kit/log";

// An agent's own credential: the one kept in `credentialFile` from an
// earlier start while Otto still knows it, or a new one traded for the join
// token (and then kept there, mode 0600, for the next start). Both go
// through the gateway's public URL, as every call of an agent does. A kept credential Otto no longer knows (its database was reset) is
// replaced by joining again; a revoked agent cannot join again, so this
// does not undo a revocation.
export async function obtainAgentCredential(options: {
  agentId: string;
  url: string;
  joinToken: string | undefined;
  credentialFile: string | undefined;
  log: Logger;
}): Promise<string> {
  const { credentialFile, log } = options;
  const registry = clientFor(RegistryService, options.url);
  if (credentialFile) {
    const kept = (await readFile(credentialFile, "utf8").catch(() => "")).trim();
    if (kept && !(options.joinToken && (await refused(registry, kept, options.agentId)))) return kept;
    if (kept) log.warn("Otto does not know the kept credential any more; joining again");
  }
  if (!options.joinToken) {
    throw new Error("no agent credential: set OTTO_AGENT_JOIN_TOKEN (an admin makes one with `otto token create --join`)");
  }
  const { credential } = await retry(() => registry.joinAgent({ joinToken: options.joinToken!, agentId: options.agentId }), 25);
  log.info("joined Otto with the join token; got a credential of its own");
  if (credentialFile) await writeFileAtomically(credentialFile, credential + "\n");
  return credential;
}

// Whether Otto answers this credential with "unauthenticated" (while Otto
// is still starting, it is asked again): renewing the agent's own entry is
// a call any known agent may make, whether or not the entry exists.
async function refused(registry: Client<typeof RegistryService>, credential: string, agentId: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await registry.renew({ service: "agent", instanceId: agentId }, { headers: { authorization: `Bearer ${credential}` } });
      return false;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.Unauthenticated) return true;
      if (err instanceof ConnectError && err.code === Code.NotFound) return false;
      if (attempt >= 25) return false;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
