import { readFile, rename, writeFile } from "node:fs/promises";
import { RegistryService } from "../../../gen/otto/v1/registry_service_pb.ts";
import { clientFor } from "../../kit/src/clients.ts";
import { retry } from "../../kit/src/service.ts";
import type { Logger } from "../../kit/src/log.ts";

// An agent's own credential: the one kept in `credentialFile` from an
// earlier start, or a new one traded for the join token at the registry
// (and then kept there, mode 0600, for the next start).
export async function obtainAgentCredential(options: {
  agentId: string;
  registryUrl: string;
  joinToken: string | undefined;
  credentialFile: string | undefined;
  log: Logger;
}): Promise<string> {
  const { credentialFile, log } = options;
  if (credentialFile) {
    const kept = (await readFile(credentialFile, "utf8").catch(() => "")).trim();
    if (kept) return kept;
  }
  if (!options.joinToken) {
    throw new Error("no agent credential: set OTTO_AGENT_JOIN_TOKEN (an admin makes one with `otto token create --join`)");
  }
  const registry = clientFor(RegistryService, options.registryUrl);
  const { credential } = await retry(() => registry.joinAgent({ joinToken: options.joinToken!, agentId: options.agentId }), 25);
  log.info("joined Otto with the join token; got a credential of its own");
  if (credentialFile) {
    await writeFile(`${credentialFile}.tmp`, credential + "\n", { mode: 0o600 });
    await rename(`${credentialFile}.tmp`, credentialFile);
  }
  return credential;
}
