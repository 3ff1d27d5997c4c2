// `npm run agent -- --url URL ...`: each flag stands for an environment
// variable (which the agent reads either way); anything else is refused.
const flags: Record<string, string> = {
  "--url": "OTTO_URL",
  "--ca": "OTTO_CA_FILE",
  "--join-token": "OTTO_AGENT_JOIN_TOKEN",
  "--id": "OTTO_AGENT_ID",
  "--labels": "OTTO_AGENT_LABELS",
  "--slots": "OTTO_AGENT_SLOTS",
  "--work-dir": "OTTO_AGENT_WORK_DIR",
};

export const agentUsage = `usage: npm run agent -- --url URL [--ca FILE] [--join-token TOKEN] [--labels a,b] [--slots N] [--work-dir DIR] [--id ID]
  --url URL           Otto's public URL, the gateway's (OTTO_URL)
  --ca FILE           the CA its certificate chains to, when the system does not trust it (OTTO_CA_FILE)
  --join-token TOKEN  a join token from \`otto token create NAME --join\`, traded once for the
                      agent's own credential, kept in the work directory (OTTO_AGENT_JOIN_TOKEN;
                      the variable keeps it out of the process list)
  --labels a,b        what jobs may ask for with runs-on (OTTO_AGENT_LABELS; default the OS and host name)
  --slots N           jobs at once (OTTO_AGENT_SLOTS, default 2)
  --work-dir DIR      jobs' directories and the credential (OTTO_AGENT_WORK_DIR)
  --id ID             the agent's name (OTTO_AGENT_ID; default from the host name)
`;

export class AgentUsageError extends Error {}

// The variables the flags stand for, with their values.
export function agentArgsAsEnv(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const name = flags[argv[i]];
    if (!name) throw new AgentUsageError(argv[i].startsWith("-") ? `unknown flag ${argv[i]}` : `unexpected argument "${argv[i]}"`);
    const value = argv[++i];
    if (value === undefined || value.startsWith("--")) throw new AgentUsageError(`${argv[i - 1]} needs a value`);
    out[name] = value;
  }
  return out;
}
