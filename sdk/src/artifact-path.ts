// The gateway's address of an artifact's bytes (GET, with the token as a
// bearer header): /artifacts/{run}/{job}/{path}?attempt=N, each part
// percent-encoded (a matrix expansion's job has "[", "=" and ","). Attempt
// 0 or none: the latest.
export function artifactDownloadPath(runId: string, job: string, name: string, attempt = 0): string {
  const path = name.split("/").map(encodeURIComponent).join("/");
  return `/artifacts/${encodeURIComponent(runId)}/${encodeURIComponent(job)}/${path}${attempt > 0 ? `?attempt=${attempt}` : ""}`;
}
