// How a project's forge token (the secret that also sends its commit
// statuses) signs git in over HTTPS: HTTP Basic, the token as the password.
// GitLab wants the user "oauth2"; GitHub and Gitea take any user, and
// x-access-token is GitHub's own. Only over HTTPS: never in clear.

export interface ForgeCredential {
  // The secret whose value is the token.
  secret: string;
  user: string;
}

export function forgeCredential(forgeKind: string, tokenSecret: string, repoUrl: string): ForgeCredential | undefined {
  if (!tokenSecret || !/^https:\/\//i.test(repoUrl)) return undefined;
  return { secret: tokenSecret, user: forgeKind === "gitlab" ? "oauth2" : "x-access-token" };
}

export function basicAuthHeader(user: string, token: string): string {
  return `Authorization: Basic ${Buffer.from(`${user}:${token}`).toString("base64")}`;
}
