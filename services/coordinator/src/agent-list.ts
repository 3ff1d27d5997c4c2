import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { AgentInfoSchema, type AdminService } from "@otto/gen/v1/admin_service_pb";
import type { Instance } from "@otto/gen/v1/registry_service_pb";
import type { Pool } from "@otto/kit/db";

// AdminService.ListAgents, which the gateway passes on: the agents the
// registry knows alive, with the jobs their slots hold now (the slot
// reservations of assigned tasks).
export function agentListRoutes(pool: Pool, liveAgents: () => Promise<Instance[]>): Partial<ServiceImpl<typeof AdminService>> {
  return {
    async listAgents() {
      const agents = await liveAgents();
      const { rows } = await pool.query(
        `SELECT name AS agent_id, run_id, job, attempt FROM coordinator.reservations
         WHERE kind = 'slot' AND name = ANY($1) ORDER BY name, run_id, job`,
        [agents.map((agent) => agent.instanceId)],
      );
      const list = agents
        .map((agent) => {
          const jobs = rows.filter((row) => row.agent_id === agent.instanceId).map((row) => ({ runId: row.run_id, job: row.job, attempt: row.attempt }));
          return create(AgentInfoSchema, {
            id: agent.instanceId,
            labels: agent.labels,
            slots: agent.slots,
            busySlots: jobs.length,
            freeSlots: Math.max(agent.slots - jobs.length, 0),
            jobs,
            registeredAt: agent.registeredAt,
            leaseExpiresAt: agent.leaseExpiresAt,
          });
        })
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return { agents: list };
    },
  };
}
