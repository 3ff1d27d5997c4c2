import { Code, ConnectError } from "@connectrpc/connect";
import type { Pool } from "@otto/kit/db";
import { openSecret, sealSecret } from "@otto/kit/secret-box";

// Secrets at rest: sealed under the coordinator's key (OTTO_SECRETS_KEY_FILE
// or OTTO_SECRETS_KEY), which never reaches the database. Values leave only
// inside the task a job's agent receives.
export class SecretStore {
  readonly #pool: Pool;
  readonly #key: Buffer | undefined;

  constructor(pool: Pool, key: Buffer | undefined) {
    this.#pool = pool;
    this.#key = key;
  }

  #requireKey(): Buffer {
    if (!this.#key) {
      throw new ConnectError(
        "this Otto has no secrets key: start its coordinators with OTTO_SECRETS_KEY_FILE (or OTTO_SECRETS_KEY) set",
        Code.FailedPrecondition,
      );
    }
    return this.#key;
  }

  // Names and values are bounded by SetSecretRequest's protovalidate rules.
  async set(name: string, value: string): Promise<void> {
    await this.#pool.query(
      `INSERT INTO coordinator.secrets (name, sealed) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET sealed = $2, updated_at = now()`,
      [name, sealSecret(this.#requireKey(), name, value)],
    );
  }

  async list(): Promise<Array<{ name: string; updatedAt: Date }>> {
    const { rows } = await this.#pool.query("SELECT name, updated_at FROM coordinator.secrets ORDER BY name");
    return rows.map((row) => ({ name: row.name, updatedAt: row.updated_at }));
  }

  async delete(name: string): Promise<void> {
    const { rowCount } = await this.#pool.query("DELETE FROM coordinator.secrets WHERE name = $1", [name]);
    if (!rowCount) throw new ConnectError(`no secret is named ${name}`, Code.NotFound);
  }

  // Other values kept sealed under the same key (a project's webhook
  // secret), each bound to a label of its own that no secret's name can be.
  seal(label: string, value: string): Buffer {
    return sealSecret(this.#requireKey(), label, value);
  }

  open(label: string, sealed: Buffer): string {
    return openSecret(this.#requireKey(), label, sealed);
  }

  // A run may name only secrets that exist (and that this Otto can open).
  async requireExisting(names: string[]): Promise<void> {
    if (names.length === 0) return;
    this.#requireKey();
    const { rows } = await this.#pool.query("SELECT name FROM coordinator.secrets WHERE name = ANY($1)", [names]);
    const found = new Set(rows.map((row) => row.name));
    const missing = [...new Set(names)].filter((name) => !found.has(name));
    if (missing.length > 0) {
      throw new ConnectError(
        `the pipeline names secrets that are not set: ${missing.join(", ")} (an admin sets them with \`otto secret set NAME\`)`,
        Code.FailedPrecondition,
      );
    }
  }

  // The values of the named secrets, and the names that no longer exist.
  async reveal(names: string[]): Promise<{ values: Record<string, string>; missing: string[] }> {
    if (names.length === 0) return { values: {}, missing: [] };
    const { rows } = await this.#pool.query("SELECT name, sealed FROM coordinator.secrets WHERE name = ANY($1)", [names]);
    const values: Record<string, string> = {};
    for (const row of rows) {
      if (this.#key) values[row.name] = openSecret(this.#key, row.name, row.sealed);
    }
    return { values, missing: names.filter((name) => !(name in values)) };
  }
}
