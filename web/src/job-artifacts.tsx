import { useEffect, useState } from "preact/hooks";
import { artifactDownloadPath, type Artifact } from "@otto/sdk";
import { storedToken } from "./session.ts";
import { useSession } from "./session-context.ts";

// The files an attempt of a job kept, read again when the job ends. A
// download is fetched from the gateway over this page's HTTPS with the
// bearer header (a link could not carry it, and the token never goes in a
// URL), checked against the SHA-256 its upload recorded, then saved from
// memory.
export function JobArtifacts(props: { runId: string; job: string; attempt: number; final: boolean }) {
  const { client, fail } = useSession();
  const [artifacts, setArtifacts] = useState<Artifact[]>([]);
  const [error, setError] = useState("");
  const [saving, setSaving] = useState("");
  useEffect(() => {
    const abort = new AbortController();
    client.artifacts.listArtifacts({ runId: props.runId, job: props.job }, { signal: abort.signal }).then(
      (answer) => setArtifacts(answer.artifacts.filter((artifact) => props.attempt === 0 || artifact.attempt === props.attempt)),
      (err) => !abort.signal.aborted && setError(fail(err)),
    );
    return () => abort.abort();
  }, [client, props.runId, props.job, props.attempt, props.final]);

  const save = async (artifact: Artifact) => {
    setSaving(artifact.name);
    setError("");
    try {
      const answer = await fetch(artifactDownloadPath(artifact.runId, artifact.job, artifact.name, artifact.attempt), { headers: { authorization: `Bearer ${storedToken() ?? ""}` } });
      if (!answer.ok) {
        const said = (await answer.json().catch(() => undefined)) as { error?: string } | undefined;
        throw new Error(said?.error ?? `the download failed: HTTP ${answer.status}`);
      }
      const bytes = await answer.arrayBuffer();
      // Only a secure page has crypto.subtle (Otto without TLS saves unchecked).
      if (artifact.sha256 && globalThis.crypto?.subtle && hex(await crypto.subtle.digest("SHA-256", bytes)) !== artifact.sha256) {
        throw new Error(`${artifact.name} is not what its job uploaded (its SHA-256 differs); not saved`);
      }
      const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = artifact.name.split("/").at(-1) ?? artifact.name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setSaving("");
    }
  };

  if (artifacts.length === 0 && !error) return null;
  return (
    <section class="artifacts">
      <h2>Artifacts</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ul>
        {artifacts.map((artifact) => (
          <li key={`${artifact.attempt}/${artifact.name}`}>
            <button type="button" class="download" data-artifact={artifact.name} disabled={saving === artifact.name} onClick={() => void save(artifact)}>
              {artifact.name}
            </button>{" "}
            <span class="size">{formatBytes(artifact.size)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

function hex(digest: ArrayBuffer): string {
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function formatBytes(size: bigint): string {
  const bytes = Number(size);
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
