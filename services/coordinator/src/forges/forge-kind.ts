// The forges Otto takes webhooks from and reports commit statuses to.
// Forgejo speaks Gitea's dialect, so it is "gitea" here.
export type ForgeKind = "github" | "gitea" | "gitlab";

export const forgeKinds: readonly ForgeKind[] = Object.freeze(["github", "gitea", "gitlab"]);
