// inTransaction (kit/db.ts) opens its transaction with its first statement
// (BEGIN in the same write), and commitWith ends it with its last (COMMIT in
// the same write): all of the work or none of it takes effect, whatever those
// statements are. In this process, against a real Postgres.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { commitWith, inTransaction } from "@otto/kit/db";
import { isRetryable } from "@otto/kit/retryable";
import { startEngineDb, type EngineDb } from "./helpers/engine-db.ts";

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
  await db.pool.query("CREATE TABLE IF NOT EXISTS public.tx_probe (id text PRIMARY KEY, n int NOT NULL)");
});
after(() => db?.stop());

async function exists(id: string): Promise<boolean> {
  return (await db.pool.query("SELECT 1 FROM public.tx_probe WHERE id = $1", [id])).rowCount === 1;
}

test("work that fails after its first statement leaves nothing behind, whether that statement had parameters or not", async () => {
  const prepared = randomUUID();
  await assert.rejects(
    inTransaction(db.pool, async (client) => {
      await client.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [prepared]);
      throw new Error("changed my mind");
    }),
    /changed my mind/,
  );
  assert.equal(await exists(prepared), false);

  const plain = randomUUID();
  await assert.rejects(
    inTransaction(db.pool, async (client) => {
      await client.query(`INSERT INTO public.tx_probe (id, n) VALUES ('${plain}', 1)`);
      await client.query("SELECT 1/0");
    }),
    /division by zero/,
  );
  assert.equal(await exists(plain), false);
});

test("the first statement's own result is the answer, and the work commits as one", async () => {
  const id = randomUUID();
  const result = await inTransaction(db.pool, async (client) => {
    const { rows } = await client.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 41) RETURNING n + 1 AS answer", [id]);
    const { rows: inside } = await client.query("SELECT now() = statement_timestamp() AS fresh, xact_start = now() AS same FROM pg_stat_activity WHERE pid = pg_backend_pid()");
    return { answer: rows[0].answer, inside: inside[0] };
  });
  assert.equal(result.answer, 42);
  // now() is the transaction's start: a second statement in a transaction sees it, not its own.
  assert.deepEqual(result.inside, { fresh: false, same: true });
  assert.equal(await exists(id), true);
});

test("a failed first statement rolls back, and the connection serves the next transaction", async () => {
  const id = randomUUID();
  await db.pool.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [id]);
  await assert.rejects(
    inTransaction(db.pool, (client) => client.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 2)", [id])),
    { code: "23505" },
  );
  const again = await inTransaction(db.pool, async (client) => (await client.query("SELECT n FROM public.tx_probe WHERE id = $1", [id])).rows[0].n);
  assert.equal(again, 1);
  assert.equal(await inTransaction(db.pool, async () => "nothing sent"), "nothing sent");
});

test("work ended by commitWith is committed with its last statement, or not at all when that statement fails", async () => {
  const kept = randomUUID();
  const answer = await inTransaction(db.pool, async (client) => {
    await client.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [kept]);
    const { rows } = await commitWith(client, "UPDATE public.tx_probe SET n = n + 1 WHERE id = $1 RETURNING n", [kept]);
    return rows[0].n;
  });
  assert.equal(answer, 2);
  assert.equal((await db.pool.query("SELECT n FROM public.tx_probe WHERE id = $1", [kept])).rows[0].n, 2);

  const dropped = randomUUID();
  await assert.rejects(
    inTransaction(db.pool, async (client) => {
      await client.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [dropped]);
      await commitWith(client, "INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [kept]);
    }),
    { code: "23505" },
  );
  assert.equal(await exists(dropped), false, "the statements before the failed one were rolled back");
});

test("a statement after the one that committed is refused, the committed work stays", async () => {
  const id = randomUUID();
  await assert.rejects(
    inTransaction(db.pool, async (client) => {
      await commitWith(client, "INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [id]);
      await client.query("SELECT 1");
    }),
    /after the one that committed its transaction/,
  );
  assert.equal(await exists(id), true);
  assert.equal(await inTransaction(db.pool, async (client) => (await client.query("SELECT count(*)::int AS n FROM public.tx_probe WHERE id = $1", [id])).rows[0].n), 1);
});

test("a transaction whose session Postgres ended before its COMMIT took no effect, and says it may be tried again", async () => {
  const id = randomUUID();
  let caught: unknown;
  await inTransaction(db.pool, async (client) => {
    await client.query("INSERT INTO public.tx_probe (id, n) VALUES ($1, 1)", [id]);
    const { rows } = await client.query("SELECT pg_backend_pid() AS pid");
    // As when this process was stopped for longer than Postgres keeps a
    // session idle in a transaction: the session ends under it.
    const ended = new Promise((resolve) => client.once("end", resolve));
    client.on("error", () => {});
    await db.pool.query("SELECT pg_terminate_backend($1)", [rows[0].pid]);
    await ended;
  }).catch((err) => (caught = err));
  assert.match(String((caught as Error)?.message), /not queryable/, "the COMMIT was never sent");
  assert.equal(isRetryable(caught), true);
  assert.equal(await exists(id), false);
});
