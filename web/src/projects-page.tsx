import { useRef, useState } from "preact/hooks";
import type { Project, Run } from "@otto/sdk";
import { formatTime, refOf, shortSha, stateClass, stateName } from "./format.ts";
import { Link } from "./link.tsx";
import { lastRuns, useLiveProjects } from "./live-projects.ts";
import { runPath } from "./route.ts";
import { useSession } from "./session-context.ts";

export function ProjectsPage() {
  const { client, fail } = useSession();
  const live = useLiveProjects(client, fail);
  return (
    <main class="projects-page">
      <header class="page-header">
        <h1>Projects</h1>
      </header>
      {live.error && (
        <p class="error" role="alert">
          {live.error}
        </p>
      )}
      {live.projects === undefined ? (
        !live.error && <p class="loading">Loading…</p>
      ) : live.projects.length === 0 ? (
        <div class="empty">
          <p>No projects yet. Connect a repository (a token with the admin scope):</p>
          <pre class="command">otto project create app --repo https://github.com/acme/app.git --forge github</pre>
          <p>and give its forge the webhook URL and secret it prints.</p>
        </div>
      ) : (
        live.projects.map(({ project, runs }) => <ProjectCard key={project.name} project={project} runs={runs} />)
      )}
    </main>
  );
}

function ProjectCard({ project, runs }: { project: Project; runs: Run[] }) {
  const forge = project.forge;
  return (
    <section class="project" data-project={project.name}>
      <h2 class="project-name">{project.name}</h2>
      <dl class="facts">
        <dt>Repository</dt>
        <dd class="repo-url mono">{project.repoUrl}</dd>
        <dt>Forge</dt>
        <dd class="forge">
          {forge?.kind ? (
            <>
              <span class="forge-kind">{forge.kind}</span>
              {forge.repository && <span class="forge-repository mono">{forge.repository}</span>}
            </>
          ) : (
            "none"
          )}
        </dd>
        <dt>Pipeline</dt>
        <dd class="pipeline mono">{`${project.pipelinePath} on ${project.defaultBranch}`}</dd>
        <dt>Webhook URL</dt>
        <dd>{forge?.kind ? <WebhookUrl project={project.name} url={`${location.origin}${project.webhookPath}`} /> : "none: the project has no forge"}</dd>
      </dl>
      <h3>{`Last ${lastRuns} runs`}</h3>
      {runs.length === 0 ? (
        <p class="empty">No runs yet.</p>
      ) : (
        <table class="runs project-runs">
          <thead>
            <tr>
              <th>State</th>
              <th>Run</th>
              <th>Branch</th>
              <th>Commit</th>
              <th>Started</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <ProjectRunRow key={run.id} run={run} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function ProjectRunRow({ run }: { run: Run }) {
  const source = run.source;
  return (
    <tr class="run-row" data-run-id={run.id}>
      <td>
        <span class={stateClass(run.state)}>{stateName(run.state)}</span>
      </td>
      <td>
        <Link href={runPath(run.id)} class="run-name">
          {source?.number ? `#${source.number} ${run.name}` : run.name || run.id}
        </Link>
      </td>
      <td>{refOf(source)}</td>
      <td class="sha" title={source?.sha ?? ""}>
        {shortSha(source)}
      </td>
      <td>{formatTime(run.startedAt ?? run.createdAt)}</td>
    </tr>
  );
}

// The URL to give the forge, and a button that copies it; where the
// clipboard is not to be had, the text is selected for the person to copy.
function WebhookUrl(props: { project: string; url: string }) {
  const input = useRef<HTMLInputElement>(null);
  const [said, setSaid] = useState("");
  const copy = async () => {
    try {
      if (!navigator.clipboard) throw new Error("no clipboard");
      await navigator.clipboard.writeText(props.url);
      setSaid("Copied");
    } catch {
      input.current?.focus();
      input.current?.select();
      setSaid("Selected: press Ctrl+C to copy");
    }
  };
  return (
    <span class="webhook">
      <input
        ref={input}
        class="webhook-url mono"
        type="text"
        readOnly
        value={props.url}
        aria-label={`Webhook URL of ${props.project}`}
        spellcheck={false}
        onFocus={(event) => event.currentTarget.select()}
      />
      <button type="button" class="copy" onClick={() => void copy()}>
        Copy
      </button>
      {said && (
        <span class="copied" role="status">
          {said}
        </span>
      )}
    </span>
  );
}
