import type { AgentInfo } from "@otto/sdk";
import { formatTime } from "./format.ts";
import { Link } from "./link.tsx";
import { jobPath } from "./route.ts";
import { useSession } from "./session-context.ts";
import { usePolled } from "./use-polled.ts";

// Agents have no stream to follow (they renew a lease with the registry,
// which keeps no journal): the list is read again every 2 s while the page
// is open.
const rereadMs = 2_000;

export function AgentsPage() {
  const { may } = useSession();
  if (!may("agents:read")) {
    return (
      <main class="agents-page">
        <header class="page-header">
          <h1>Agents</h1>
        </header>
        <p class="notice" role="status">
          This token may not see the agents: that takes the <code>agents:read</code> scope (or <code>admin</code>). Make one with{" "}
          <code>otto token create NAME --scope agents:read</code> and sign in with it.
        </p>
      </main>
    );
  }
  return <AgentList />;
}

function AgentList() {
  const { client, fail } = useSession();
  const polled = usePolled(async (signal) => (await client.admin.listAgents({}, { signal })).agents, rereadMs, fail);
  const agents = polled.value;
  const slots = agents?.reduce((sum, agent) => sum + agent.slots, 0) ?? 0;
  const busy = agents?.reduce((sum, agent) => sum + agent.busySlots, 0) ?? 0;
  return (
    <main class="agents-page">
      <header class="page-header">
        <h1>Agents</h1>
        {agents && agents.length > 0 && (
          <p class="summary">
            {`${agents.length} ${agents.length === 1 ? "agent" : "agents"}, ${busy} of ${slots} slots busy`}
          </p>
        )}
      </header>
      {polled.error && (
        <p class="error" role="alert">
          {polled.error}
        </p>
      )}
      {agents === undefined ? (
        !polled.error && <p class="loading">Loading…</p>
      ) : agents.length === 0 ? (
        <p class="empty">
          No agent is connected. Start one with <code>otto agent --url URL --join-token TOKEN</code> (a join token from{" "}
          <code>otto token create NAME --join</code>).
        </p>
      ) : (
        <table class="agents">
          <thead>
            <tr>
              <th>Agent</th>
              <th>Labels</th>
              <th>Slots</th>
              <th>Running</th>
              <th>Joined</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((agent) => (
              <AgentRow key={agent.id} agent={agent} />
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}

function AgentRow({ agent }: { agent: AgentInfo }) {
  const share = agent.slots > 0 ? Math.min(100, Math.round((agent.busySlots / agent.slots) * 100)) : 0;
  return (
    <tr class="agent" data-agent-id={agent.id}>
      <td class="agent-id mono">{agent.id}</td>
      <td class="labels">
        {agent.labels.length === 0 ? <span class="none">none</span> : agent.labels.map((label) => <span class="label">{label}</span>)}
      </td>
      <td class="slots">
        <span class="slot-count">{`${agent.busySlots} / ${agent.slots} busy`}</span>
        <span class="slot-bar" role="meter" aria-label="busy slots" aria-valuemin={0} aria-valuemax={agent.slots} aria-valuenow={agent.busySlots}>
          <span class="slot-bar-busy" style={{ width: `${share}%` }} />
        </span>
      </td>
      <td class="agent-jobs">
        {agent.jobs.length === 0 ? (
          <span class="none">idle</span>
        ) : (
          <ul>
            {agent.jobs.map((job) => (
              <li key={`${job.runId}/${job.job}/${job.attempt}`}>
                <Link href={jobPath(job.runId, job.job, job.attempt)} class="agent-job" title={`run ${job.runId}, attempt ${job.attempt}`}>
                  {job.job}
                </Link>{" "}
                <span class="job-of mono">
                  {`run ${job.runId.slice(0, 8)}`}
                  {job.attempt > 1 ? `, attempt ${job.attempt}` : ""}
                </span>
              </li>
            ))}
          </ul>
        )}
      </td>
      <td title={`lease until ${formatTime(agent.leaseExpiresAt)}`}>{formatTime(agent.registeredAt)}</td>
    </tr>
  );
}
