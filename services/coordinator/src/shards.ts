import { EventEmitter } from "node:events";
import { inTransaction, type Pool, type PoolClient } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import { Code, ConnectError } from "@connectrpc/connect";

export const shardCount = 16;

export function shardOf(runId: string): number {
  return parseInt(runId.slice(0, 8), 16) % shardCount;
}

export interface ShardOptions {
  pool: Pool;
  log: Logger;
  memberId: string;
  leaseMs: number;
}

// Keeps this coordinator's share of the shards: renews the leases it holds,
// takes free or lapsed shards, and gives back extras when peers join. Each
// take bumps the shard's epoch, which fences out the previous owner.
// Notified when a coordinator gives its shards back.
export const shardsChannel = "otto_shards";

export class ShardManager extends EventEmitter {
  #stopped = false;
  readonly #options: ShardOptions;
  #owned = new Map<number, number>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ShardOptions) {
    super();
    this.#options = options;
  }

  owned(): ReadonlyMap<number, number> {
    return this.#owned;
  }

  async start(): Promise<void> {
    await this.tick();
    this.#timer = setInterval(() => void this.tick(), Math.max(100, this.#options.leaseMs / 5));
  }

  tick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#running ??= this.#rebalance()
      .catch((err) => this.#options.log.warn("shard lease round failed", { err }))
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #rebalance(): Promise<void> {
    const { pool, memberId, leaseMs } = this.#options;
    const owned = await inTransaction(pool, async (client) => {
      await client.query(
        `INSERT INTO coordinator.members (id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`,
        [memberId],
      );
      await client.query("DELETE FROM coordinator.members WHERE heartbeat_at < now() - interval '10 minutes'");
      const { rows: live } = await client.query(
        "SELECT count(*)::int AS n FROM coordinator.members WHERE heartbeat_at > now() - make_interval(secs => $1::float / 1000)",
        [leaseMs],
      );
      const target = Math.ceil(shardCount / Math.max(1, live[0].n));
      const renewed = await client.query(
        `UPDATE coordinator.shards SET lease_expires_at = now() + make_interval(secs => $2::float / 1000)
         WHERE owner = $1 AND lease_expires_at > now() RETURNING shard, epoch`,
        [memberId, leaseMs],
      );
      const mine = new Map<number, number>(renewed.rows.map((r) => [r.shard, Number(r.epoch)]));
      // Lapsed shards are taken whatever the share (an owner that died must be
      // replaced at once, and one of ours that lapsed while we were paused
      // must get a new epoch); free ones only up to this coordinator's share.
      const take = (where: string, limit: number) =>
        client.query(
          `UPDATE coordinator.shards s SET owner = $1, epoch = s.epoch + 1,
             lease_expires_at = now() + make_interval(secs => $2::float / 1000)
           FROM (SELECT shard FROM coordinator.shards WHERE ${where} ORDER BY shard LIMIT $3 FOR UPDATE SKIP LOCKED) t
           WHERE s.shard = t.shard RETURNING s.shard, s.epoch`,
          [memberId, leaseMs, limit],
        );
      const lapsed = await take("owner IS NOT NULL AND lease_expires_at <= now()", shardCount);
      for (const row of lapsed.rows) mine.set(row.shard, Number(row.epoch));
      const taken = mine.size < target ? await take("owner IS NULL", target - mine.size) : { rows: [] };
      for (const row of taken.rows) mine.set(row.shard, Number(row.epoch));
      if (mine.size > target) {
        const { rows: counts } = await client.query(
          `SELECT count(*)::int AS n FROM coordinator.members m
           WHERE m.heartbeat_at > now() - make_interval(secs => $2::float / 1000) AND m.id <> $1
             AND (SELECT count(*) FROM coordinator.shards s WHERE s.owner = m.id AND s.lease_expires_at > now()) < $3`,
          [memberId, leaseMs, Math.floor(shardCount / Math.max(1, live[0].n))],
        );
        if (counts[0].n > 0) {
          const extra = [...mine.keys()].sort((a, b) => b - a).slice(0, mine.size - target);
          await client.query(
            "UPDATE coordinator.shards SET owner = NULL, lease_expires_at = NULL WHERE owner = $1 AND shard = ANY($2)",
            [memberId, extra],
          );
          for (const shard of extra) mine.delete(shard);
        }
      }
      return mine;
    });
    const before = [...this.#owned.keys()].sort().join(",");
    const after = [...owned.keys()].sort().join(",");
    this.#owned = owned;
    if (before !== after) {
      this.#options.log.info("shards owned", { shards: [...owned.keys()].sort((a, b) => a - b) });
      this.emit("changed");
    }
  }

  // Gives every shard back at once, and tells the peers (who take them at
  // once), so that they need not wait for the leases to lapse.
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
    const { pool, memberId } = this.#options;
    this.#owned = new Map();
    await pool.query("UPDATE coordinator.shards SET owner = NULL, lease_expires_at = NULL WHERE owner = $1", [memberId]);
    await pool.query("DELETE FROM coordinator.members WHERE id = $1", [memberId]);
    await pool.query("SELECT pg_notify($1, $2)", [shardsChannel, memberId]);
  }
}

// Inside a transaction: proceed only while this coordinator still owns the
// shard at the epoch it took it with. The row stays share-locked until the
// transaction ends, so no peer can take the shard in between.
export async function fenceShard(client: PoolClient, shard: number, epoch: number, memberId: string): Promise<void> {
  const { rowCount } = await client.query(
    `SELECT 1 FROM coordinator.shards WHERE shard = $1 AND owner = $2 AND epoch = $3 AND lease_expires_at > now() FOR SHARE`,
    [shard, memberId, epoch],
  );
  if (!rowCount) throw new FencedError(shard, epoch);
}

export class FencedError extends ConnectError {
  constructor(shard: number, epoch: number) {
    super(`shard ${shard} is no longer owned at epoch ${epoch}`, Code.Aborted);
  }
}
