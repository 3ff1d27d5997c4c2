import { randomBytes } from "node:crypto";
import { readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { writeFileAtomically } from "@otto/kit/atomic-file";

// The embedded Postgres's superuser password: random for each data
// directory and kept only in `<dir>/password` (0600). Directories made
// before that had the fixed password "otto"; they are switched to a random
// one when they are first started without the file.
const legacyPassword = "otto";

export function passwordFile(dir: string): string {
  return join(dir, "password");
}

// URL-safe, so it goes into a connection URL as it is.
export function newPassword(): string {
  return randomBytes(24).toString("base64url");
}

export async function readPassword(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, "utf8")).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

// The password for a new cluster: the one already in the file, or a new
// one written there before the cluster is made with it.
export async function passwordForNewCluster(dir: string): Promise<string> {
  const file = passwordFile(dir);
  const kept = await readPassword(file);
  if (kept) return kept;
  const password = newPassword();
  await writeFileAtomically(file, password + "\n");
  return password;
}

// For a running cluster that has no password file: sets a new random
// password through the old one. The new one is written to `password.new`
// first and renamed into place only once Postgres has it, so a crash in
// between loses neither.
export async function replaceLegacyPassword(dir: string, urlWith: (password: string) => string): Promise<string> {
  const pending = `${passwordFile(dir)}.new`;
  const password = (await readPassword(pending)) ?? newPassword();
  await writeFileAtomically(pending, password + "\n");
  if (!(await accepted(urlWith(password)))) {
    const client = new pg.Client({ connectionString: urlWith(legacyPassword) });
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => {});
      throw new Error(`the embedded PostgreSQL in ${dir} has no ${passwordFile(dir)} and does not take the old default password either: ${(err as Error).message}`);
    }
    try {
      await client.query(`ALTER ROLE postgres PASSWORD ${client.escapeLiteral(password)}`);
    } finally {
      await client.end();
    }
  }
  await rename(pending, passwordFile(dir));
  return password;
}

async function accepted(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
