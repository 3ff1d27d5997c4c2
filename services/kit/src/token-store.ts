import { createHash, randomBytes } from "node:crypto";
import type pg from "pg";
import { Code, ConnectError } from "@connectrpc/connect";
import { inTransaction, migrate } from "./db.ts";
import { repeatable } from "./retryable.ts";
import { agentIdProblem } from "./agent-id.ts";
import { endAgentsAttempts } from "./live-attempts.ts";
import type { Notifier } from "./notifier.ts";
import { scopes as knownScopes, type Caller, type Scope } from "./caller.ts";

// Bearer tokens, kept only as SHA-256 hashes (they are 256 random bits, so a
// slow hash would add nothing): API tokens for people and tools, join tokens
// that agents trade for a credential of their own, and those agent
// credentials. Verified tokens are cached until any token is revoked, which
// every process hears at once through NOTIFY otto_auth, and only while the
// process's Notifier is listening.

export type TokenKind = "api" | "join" | "agent";

export interface TokenInfo {
  id: string;
  kind: TokenKind;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  expiresAt: Date | undefined;
  revokedAt: Date | undefined;
}

export interface NewToken {
  info: TokenInfo;
  token: string;
}

const migrations = [
  `CREATE TABLE tokens (
     id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
     kind text NOT NULL CHECK (kind IN ('api', 'join', 'agent')),
     name text NOT NULL,
     hash bytea NOT NULL UNIQUE,
     scopes text[] NOT NULL DEFAULT '{}',
     created_at timestamptz NOT NULL DEFAULT now(),
     expires_at timestamptz,
     revoked_at timestamptz
   );
   CREATE INDEX tokens_agent_name ON tokens (name) WHERE kind = 'agent';`,
  // Attempts whose task tokens may still write (live-attempts.ts).
  `CREATE TABLE live_attempts (
     run_id uuid NOT NULL,
     job text NOT NULL,
     attempt int NOT NULL,
     agent_id text NOT NULL,
     PRIMARY KEY (run_id, job, attempt)
   )`,
];

export const authChannel = "otto_auth";
const cacheMs = 60_000;
const tokenPattern = /^otto_(api|join|agent)_[A-Za-z0-9_-]{43}$/;

// The auth schema, for processes that read it without a TokenStore (the
// objects service reads live_attempts).
export function migrateAuth(pool: pg.Pool): Promise<void> {
  return migrate(pool, "auth", migrations);
}

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

export class TokenStore {
  readonly #pool: pg.Pool;
  readonly #notifier: Notifier | undefined;
  readonly #cache = new Map<string, { caller: Caller; expiresAt: number }>();
  // Token ids found live, for callers that hold on to a caller for long (a long poll).
  readonly #liveIds = new Map<string, number>();

  // Without a notifier (listening on authChannel) nothing is cached.
  constructor(pool: pg.Pool, notifier?: Notifier) {
    this.#pool = pool;
    this.#notifier = notifier;
    notifier?.on(authChannel, () => this.#forget());
  }

  async start(): Promise<void> {
    await migrateAuth(this.#pool);
  }

  // Until when a token found live may be taken as live without asking again:
  // only while revocations can be heard.
  #cacheUntil(expiresAt: Date | undefined): number | undefined {
    if (!this.#notifier?.listening) return undefined;
    return Math.min(Date.now() + cacheMs, expiresAt?.getTime() ?? Infinity);
  }

  #cached<T>(entry: T | undefined, expiresAt: (entry: T) => number): T | undefined {
    if (entry === undefined || !this.#notifier?.listening || expiresAt(entry) <= Date.now()) return undefined;
    return entry;
  }

  #forget(): void {
    this.#cache.clear();
    this.#liveIds.clear();
  }

  // Whether the token with this id is still neither revoked nor expired.
  async isLiveId(id: string): Promise<boolean> {
    if (this.#cached(this.#liveIds.get(id), (until) => until) !== undefined) return true;
    const { rows } = await repeatable(() =>
      this.#pool.query("SELECT expires_at FROM auth.tokens WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())", [id]),
    );
    if (rows.length === 0) return false;
    const until = this.#cacheUntil(rows[0].expires_at ?? undefined);
    if (until !== undefined) this.#liveIds.set(id, until);
    return true;
  }

  async create(kind: TokenKind, name: string, scopes: Scope[] = [], ttlSeconds = 0, db: pg.Pool | pg.PoolClient = this.#pool): Promise<NewToken> {
    const token = `otto_${kind}_${randomBytes(32).toString("base64url")}`;
    const { rows } = await db.query(
      `INSERT INTO auth.tokens (kind, name, hash, scopes, expires_at)
       VALUES ($1, $2, $3, $4, CASE WHEN $5::int > 0 THEN now() + make_interval(secs => $5::int) END)
       RETURNING *`,
      [kind, name, hashToken(token), scopes, ttlSeconds],
    );
    return { info: infoOf(rows[0]), token };
  }

  async list(kind?: TokenKind): Promise<TokenInfo[]> {
    const { rows } = await this.#pool.query(
      "SELECT * FROM auth.tokens WHERE ($1::text IS NULL OR kind = $1) ORDER BY created_at, id",
      [kind ?? null],
    );
    return rows.map(infoOf);
  }

  async get(id: string): Promise<TokenInfo | undefined> {
    const { rows } = await this.#pool.query("SELECT * FROM auth.tokens WHERE id = $1", [id]);
    return rows[0] ? infoOf(rows[0]) : undefined;
  }

  // Revokes one token, or every credential of an agent; returns what it
  // revoked. A revoked agent's attempts end with it: their task tokens write
  // no more.
  async revoke(where: { id: string } | { agent: string }): Promise<TokenInfo[]> {
    const { rows } = await this.#pool.query(
      `WITH revoked AS (
         UPDATE auth.tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE ${"id" in where ? "id = $1::uuid" : "kind = 'agent' AND name = $1"} RETURNING *
       ), ended AS (${endAgentsAttempts("SELECT name FROM revoked WHERE kind = 'agent'")})
       SELECT * FROM revoked`,
      ["id" in where ? where.id : where.agent],
    );
    await this.#pool.query("SELECT pg_notify($1, '')", [authChannel]);
    // Other processes forget when the notification reaches them; this one
    // at once, so that the revoking call's answer is already true here.
    this.#forget();
    return rows.map(infoOf);
  }

  // The live token row for a token string, if any.
  async #lookup(token: string, hash = hashToken(token)): Promise<TokenInfo | undefined> {
    if (!tokenPattern.test(token)) return undefined;
    const { rows } = await repeatable(() =>
      this.#pool.query("SELECT * FROM auth.tokens WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())", [hash]),
    );
    return rows[0] ? infoOf(rows[0]) : undefined;
  }

  async isLive(token: string, kind: TokenKind): Promise<boolean> {
    return (await this.#lookup(token))?.kind === kind;
  }

  async verify(token: string): Promise<Caller | undefined> {
    const hash = hashToken(token);
    const key = hash.toString("base64");
    const cached = this.#cached(this.#cache.get(key), (entry) => entry.expiresAt);
    if (cached) return cached.caller;
    const info = await this.#lookup(token, hash);
    if (!info || info.kind === "join") return undefined;
    const caller: Caller =
      info.kind === "api"
        ? { kind: "api", tokenId: info.id, name: info.name, scopes: info.scopes }
        : { kind: "agent", tokenId: info.id, agentId: info.name };
    const until = this.#cacheUntil(info.expiresAt);
    if (until !== undefined) this.#cache.set(key, { caller, expiresAt: until });
    return caller;
  }

  // An agent trades a live join token for a credential of its own, under an
  // id (of the one spelling agent-id.ts checks) that no live credential holds:
  // that id is another agent's, and only its kept credential speaks for it.
  // An id whose credential was revoked stays refused.
  async join(joinToken: string, agentId: string): Promise<NewToken> {
    const problem = agentIdProblem(agentId);
    if (problem) throw new ConnectError(problem, Code.InvalidArgument);
    const join = await this.#lookup(joinToken);
    if (!join || join.kind !== "join") {
      throw new ConnectError("the join token is unknown, expired or revoked", Code.Unauthenticated);
    }
    return inTransaction(this.#pool, async (client) => {
      // One join per id at a time, so two cannot both find it free.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('otto-agent-join:' || $1))", [agentId]);
      const { rows } = await client.query(
        `SELECT coalesce(bool_or(revoked_at IS NOT NULL), false) AS revoked,
           coalesce(bool_or(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())), false) AS live
         FROM auth.tokens WHERE kind = 'agent' AND name = $1`,
        [agentId],
      );
      if (rows[0].revoked) {
        throw new ConnectError(`agent ${agentId} was revoked; an admin must choose a new agent id for this host`, Code.PermissionDenied);
      }
      if (rows[0].live) {
        throw new ConnectError(
          `agent ${agentId} already has a credential; start that agent with the credential file it keeps, or give this one another OTTO_AGENT_ID`,
          Code.AlreadyExists,
        );
      }
      return this.create("agent", agentId, [], 0, client);
    });
  }
}

export function parseScopes(values: readonly string[]): Scope[] {
  const unknown = values.filter((s) => !(knownScopes as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw new ConnectError(`unknown scope ${unknown.join(", ")}: use ${knownScopes.join(", ")}`, Code.InvalidArgument);
  }
  return [...new Set(values)] as Scope[];
}

function infoOf(row: any): TokenInfo {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    scopes: row.scopes,
    createdAt: row.created_at,
    expiresAt: row.expires_at ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
  };
}
