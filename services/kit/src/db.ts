import { createHash } from "node:crypto";
import { context, SpanKind, trace } from "@opentelemetry/api";
import pg from "pg";
import { markFailed, tracer } from "./telemetry.ts";
import { markRetryable } from "./retryable.ts";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// A statement sent with the start or the end of its transaction: BEGIN
// before it, COMMIT after it, in the same write and answered with it, each
// saving a round trip (and a wake-up of Postgres and of this process). Only
// the statement's result is kept. Should the statement fail, Postgres skips
// the COMMIT (it ignores the rest of the write), and the transaction is
// rolled back as usual. It overrides three of pg's Query internals (the pg
// version is pinned; test/db-transactions.test.ts checks the behaviour).
class FramedQuery extends (pg.Query as unknown as new (config: pg.QueryConfig, values: undefined, callback: (err: Error | null, result: pg.QueryResult) => void) => object) {
  readonly #begin: boolean;
  readonly #commit: boolean;
  #completes = 0;

  constructor(config: pg.QueryConfig, frame: { begin: boolean; commit: boolean }, callback: (err: Error | null, result: pg.QueryResult) => void) {
    super(config, undefined, callback);
    this.#begin = frame.begin;
    this.#commit = frame.commit;
  }

  prepare(connection: Connection) {
    if (this.#begin) sendStatement(connection, "BEGIN");
    (pg.Query.prototype as unknown as { prepare(c: Connection): void }).prepare.call(this, connection);
  }

  // pg's last step of prepare(): execute, then sync; the COMMIT goes between.
  _getRows(connection: Connection, rows: number | undefined) {
    connection.execute({ portal: (this as unknown as { portal: string }).portal, rows });
    if (this.#commit) sendStatement(connection, "COMMIT");
    connection.sync();
  }

  handleCommandComplete(msg: unknown, connection: unknown) {
    const which = this.#completes++;
    if (which !== (this.#begin ? 1 : 0)) return;
    (pg.Query.prototype as unknown as { handleCommandComplete(m: unknown, c: unknown): void }).handleCommandComplete.call(this, msg, connection);
  }
}

interface Connection {
  parse(q: object): void;
  bind(c: object): void;
  execute(c: object): void;
  sync(): void;
}

function sendStatement(connection: Connection, text: string) {
  connection.parse({ text });
  connection.bind({});
  connection.execute({});
}

// A client that prepares every parameterised statement once per connection
// (named by a hash of its text), so Postgres parses and analyses each of
// Otto's statements once rather than on every call. Inside a traced
// operation each query is a child span; outside one, none is made.
class PreparingClient extends pg.Client {
  // Set by inTransaction: the next query opens the transaction.
  beginFirst = false;
  // Set by commitWith: the next query ends the transaction; then whether a
  // COMMIT went with a statement, and whether it was answered.
  commitNext = false;
  commitSent = false;
  committed = false;

  // @ts-expect-error one implementation for pg's overloads
  override query(text: unknown, values?: unknown, callback?: unknown) {
    if (this.committed) throw new Error("a statement after the one that committed its transaction (commitWith)");
    const name = typeof text === "string" && Array.isArray(values) ? statementName(text) : undefined;
    const framable = name !== undefined && typeof callback !== "function";
    const frame = { begin: this.beginFirst, commit: this.commitNext && framable };
    this.beginFirst = false;
    this.commitNext = false;
    if (frame.commit) this.commitSent = true;
    if (frame.begin && !framable) {
      // Queued ahead of the query; a failure shows in the query's own.
      (super.query("BEGIN") as Promise<unknown>).catch(() => {});
    }
    const run = () =>
      framable && (frame.begin || frame.commit)
        ? new Promise((resolve, reject) => {
            const query = new FramedQuery({ name, text, values } as pg.QueryConfig, frame, (err, result) => {
              if (err) return reject(err);
              if (frame.commit) this.committed = true;
              resolve(result);
            });
            super.query(query as never);
          })
        : name
          ? super.query({ name, text, values } as pg.QueryConfig, callback as any)
          : (super.query as (...args: unknown[]) => unknown)(text, values, callback);
    const sql = typeof text === "string" ? text : (text as { text?: string } | null)?.text;
    if (!sql || typeof callback === "function" || !trace.getSpan(context.active())) return run();
    const span = tracer.startSpan(`pg ${sql.trimStart().split(/\s/, 1)[0].toUpperCase()}`, {
      kind: SpanKind.CLIENT,
      attributes: { "db.system.name": "postgresql", "db.query.text": sql.slice(0, 2000) },
    });
    return (run() as Promise<unknown>).then(
      (result) => {
        span.end();
        return result;
      },
      (err) => {
        markFailed(span, err);
        span.end();
        throw err;
      },
    );
  }
}

// "cached plan must not change result type": a table changed (a newer
// version migrated it) under a statement this connection had prepared.
const staleStatement = "0A000";

const statementNames = new Map<string, string>();

// Otto's statements are fixed texts; should some code build them on the fly,
// only the first few hundred distinct ones are prepared.
function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (!name) {
    if (statementNames.size >= 500) return undefined;
    name = `otto_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`;
    statementNames.set(text, name);
  }
  return name;
}

export function createPool(databaseUrl: string, options: { max?: number; application: string }): pg.Pool {
  const pool = new pg.Pool({
    Client: PreparingClient as unknown as typeof pg.Client,
    connectionString: databaseUrl,
    max: options.max ?? 10,
    application_name: options.application,
    statement_timeout: 30_000,
    // Each prepared statement is planned once per connection: its plan
    // depends on no parameter's value (Otto's statements look rows up by key,
    // and their fixed states are literals, which partial indexes match).
    // Otherwise Postgres plans most calls anew, which cost as much as running them.
    options: "-c plan_cache_mode=force_generic_plan",
    // A paused process must not hold row locks for long: Postgres ends its
    // session, which rolls its transaction back and releases them.
    idle_in_transaction_session_timeout: 5_000,
    connectionTimeoutMillis: 10_000,
  });
  // pg-pool hands a waiting query the client that another caller released,
  // in that caller's async context; checking out here keeps the query in its
  // own (so its span has the right parent).
  const queryOnce = async (text: string, values?: unknown[]) => {
    const client = await connected(pool);
    let failure: unknown;
    try {
      return await client.query(text, values);
    } catch (err) {
      failure = err;
      throw neverSent(err) ? markRetryable(err) : err;
    } finally {
      // An error without an SQLSTATE is the connection's, and a stale
      // prepared statement belongs to the connection too: drop the client.
      const code = (failure as { code?: string } | undefined)?.code;
      client.release(failure !== undefined && (!code || code === staleStatement) ? true : undefined);
    }
  };
  pool.query = (async (text: string, values?: unknown[]) => {
    try {
      return await queryOnce(text, values);
    } catch (err) {
      if ((err as { code?: string }).code !== staleStatement) throw err;
      return queryOnce(text, values);
    }
  }) as typeof pool.query;
  // A client losing its connection must not crash the process, idle or not
  // (pg-pool listens only to idle ones): the pending query fails instead.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

// A connection from the pool; failing that, nothing was sent.
function connected(pool: pg.Pool): Promise<pg.PoolClient> {
  return pool.connect().catch((err: unknown) => {
    throw markRetryable(err);
  });
}

// The statement never reached Postgres: writing it failed, the peer having
// closed the connection already, or the client refused to send it, knowing
// its connection broken or closed (a session Postgres ended while this
// process was stopped, say).
function neverSent(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return code === "EPIPE" || (typeof message === "string" && / and is not queryable$/.test(message));
}

// Runs `work` in a transaction; one that Postgres aborted to break a
// deadlock (or a serialization conflict) is run again from the start, so
// `work` must do nothing but database work.
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transactionOnce(pool, work);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 4 || (code !== "40P01" && code !== "40001" && code !== staleStatement)) throw err;
      await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
    }
  }
}

async function transactionOnce<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await connected(pool);
  let broken = false;
  let committing = false;
  const preparing = client as unknown as PreparingClient;
  try {
    preparing.beginFirst = true;
    const result = await work(client);
    committing = true;
    // A transaction that sent nothing never began; one may have ended with
    // its last statement (commitWith).
    if (!preparing.beginFirst && !preparing.committed) await client.query("COMMIT");
    return result;
  } catch (err) {
    // A statement sent with the COMMIT may have taken effect.
    if (preparing.commitSent) committing = true;
    // A client that cannot even roll back has lost its connection, and one
    // whose prepared statements went stale no longer fits the schema: drop it.
    const begun = !preparing.beginFirst && !preparing.committed;
    const lost = begun
      ? await client.query("ROLLBACK").then(
          () => false,
          () => true,
        )
      : false;
    broken = lost || (err as { code?: string }).code === staleStatement;
    // Lost before its COMMIT was sent, the transaction did not take effect.
    if ((lost && !committing) || neverSent(err)) markRetryable(err);
    throw err;
  } finally {
    preparing.beginFirst = false;
    preparing.commitNext = false;
    preparing.commitSent = false;
    preparing.committed = false;
    client.release(broken || undefined);
  }
}

// Runs the last statement of an inTransaction's work and commits the
// transaction with it (in the same round trip): nothing may follow it.
export function commitWith<R extends pg.QueryResultRow = pg.QueryResultRow>(client: pg.PoolClient, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
  (client as unknown as PreparingClient).commitNext = true;
  return client.query<R>(text, values);
}

// Applies numbered migrations to a schema once each, in order, under an
// advisory lock so that two copies of a service starting together agree.
export async function migrate(pool: pg.Pool, schema: string, migrations: string[]): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`otto-migrate-${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query(`SELECT coalesce(max(version), 0) AS v FROM ${schema}.migrations`);
    for (let version = Number(rows[0].v) + 1; version <= migrations.length; version++) {
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(migrations[version - 1]);
      await client.query(`INSERT INTO ${schema}.migrations (version) VALUES ($1)`, [version]);
    }
  });
}
