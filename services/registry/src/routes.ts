import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { InstanceSchema, RegistryService, type Instance } from "@otto/gen/v1/registry_service_pb";
import type { Pool } from "@otto/kit/db";
import { callerOf } from "@otto/kit/caller";
import type { TokenStore } from "@otto/kit/token-store";

// Names, urls and lease lengths are bounded by the requests' protovalidate rules.
const defaultLeaseSeconds = 10;

export function registryRoutes(pool: Pool, tokens: TokenStore) {
  return (router: ConnectRouter) =>
    router.service(RegistryService, {
      async register(req, context) {
        requireOwnEntry(context, req.service, req.instanceId);
        const lease = req.leaseSeconds === 0 ? defaultLeaseSeconds : req.leaseSeconds;
        await pool.query("DELETE FROM registry.instances WHERE lease_expires_at < now() - interval '1 hour'");
        const { rows } = await pool.query(
          `INSERT INTO registry.instances (service, instance_id, url, labels, slots, lease_seconds, lease_expires_at)
           VALUES ($1, $2, $3, $4, $5, $6::int, now() + make_interval(secs => $6::int))
           ON CONFLICT (service, instance_id) DO UPDATE SET url = $3, labels = $4, slots = $5,
             lease_seconds = $6::int, lease_expires_at = now() + make_interval(secs => $6::int)
           RETURNING *`,
          [req.service, req.instanceId, req.url, req.labels, req.slots, lease],
        );
        return { instance: toInstance(rows[0]) };
      },
      async renew(req, context) {
        requireOwnEntry(context, req.service, req.instanceId);
        const { rows } = await pool.query(
          `UPDATE registry.instances SET lease_expires_at = now() + make_interval(secs => lease_seconds)
           WHERE service = $1 AND instance_id = $2 RETURNING *`,
          [req.service, req.instanceId],
        );
        if (rows.length === 0) {
          throw new ConnectError(`${req.service}/${req.instanceId} is not registered; register again`, Code.NotFound);
        }
        return { instance: toInstance(rows[0]) };
      },
      async deregister(req, context) {
        requireOwnEntry(context, req.service, req.instanceId);
        await pool.query("DELETE FROM registry.instances WHERE service = $1 AND instance_id = $2", [
          req.service,
          req.instanceId,
        ]);
        return {};
      },
      async resolve(req) {
        const { rows } = await pool.query(
          `SELECT * FROM registry.instances WHERE service = $1 AND lease_expires_at > now() ORDER BY registered_at`,
          [req.service],
        );
        return { instances: rows.map(toInstance) };
      },
      async joinAgent(req) {
        const { token } = await tokens.join(req.joinToken, req.agentId);
        return { credential: token };
      },
    });
}

// A process may only speak for itself: an Otto service for its own kind, an
// agent for its own id (so that nobody can pose as a coordinator or as
// another agent).
function requireOwnEntry(context: HandlerContext, service: string, instanceId: string) {
  const caller = callerOf(context);
  if (caller.kind === "anyone") return;
  if (caller.kind === "service" && caller.service === service) return;
  if (caller.kind === "agent" && service === "agent" && caller.agentId === instanceId) return;
  const who = caller.kind === "service" ? `the ${caller.service} service` : caller.kind === "agent" ? `agent ${caller.agentId}` : "this caller";
  throw new ConnectError(`${who} may not register as ${service}/${instanceId}`, Code.PermissionDenied);
}

function toInstance(row: Record<string, any>): Instance {
  return create(InstanceSchema, {
    service: row.service,
    instanceId: row.instance_id,
    url: row.url,
    labels: row.labels,
    slots: row.slots,
    leaseExpiresAt: timestampFromDate(row.lease_expires_at),
    registeredAt: timestampFromDate(row.registered_at),
  });
}
