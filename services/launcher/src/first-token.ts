// `npm run first-token -- NAME [--join]`, with DATABASE_URL: a first admin
// token (or, with --join, a join token for agents) made directly in Otto's
// database, for an Otto the launcher did not set up (on Kubernetes, say).
// Printed once; Otto keeps only its hash. Later tokens come from
// `otto token create`.
import { createPool } from "@otto/kit/db";
import { TokenStore } from "@otto/kit/token-store";

const usage = "usage: DATABASE_URL=postgres://… npm run first-token -- NAME [--join]\n";
const argv = process.argv.slice(2);
const join = argv.includes("--join");
const names = argv.filter((arg) => arg !== "--join");
const unknown = names.find((arg) => arg.startsWith("-"));
if (unknown || names.length !== 1 || !process.env.DATABASE_URL) {
  process.stderr.write(`first-token: ${unknown ? `unknown flag ${unknown}` : names.length !== 1 ? "give the token one NAME" : "DATABASE_URL is not set"}\n${usage}`);
  process.exit(2);
}
const pool = createPool(process.env.DATABASE_URL, { application: "otto-first-token", max: 1 });
try {
  const store = new TokenStore(pool);
  await store.start();
  const { token } = join ? await store.create("join", names[0], []) : await store.create("api", names[0], ["admin"]);
  process.stdout.write(`${token}\n`);
} catch (err) {
  process.stderr.write(`first-token: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await pool.end();
}
