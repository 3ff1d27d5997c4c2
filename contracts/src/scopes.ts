// What an API token may do. A scope grants itself and what it implies:
// admin everything, runs:write also runs:read; agents:read only itself.
export const scopes = ["runs:read", "runs:write", "agents:read", "admin"] as const;
export type Scope = (typeof scopes)[number];

const implies: Record<Scope, readonly Scope[]> = {
  "runs:read": [],
  "runs:write": ["runs:read"],
  "agents:read": [],
  admin: ["runs:read", "runs:write", "agents:read"],
};

export function isScope(text: string): text is Scope {
  return (scopes as readonly string[]).includes(text);
}

export function grants(held: readonly string[], wanted: Scope): boolean {
  return held.some((scope) => scope === wanted || (isScope(scope) && implies[scope].includes(wanted)));
}
