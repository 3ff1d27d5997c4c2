import { useEffect, useState } from "preact/hooks";
import type { OttoClient, Project, Run, RunState } from "@otto/sdk";
import { followRuns } from "./follow-runs.ts";
import { isAbort } from "./session.ts";

export interface ProjectRuns {
  project: Project;
  // Newest first.
  runs: Run[];
}

export interface LiveProjects {
  // By name; undefined until first read.
  projects: ProjectRuns[] | undefined;
  error: string;
}

export const lastRuns = 5;

// The projects and their last runs, kept up to date by WatchRuns: the
// stream is opened first and the projects read once its first cursor
// arrives, so no run between the two is missed. An event whose run is new
// or whose state moved reads that project's last runs again, or every
// project when it is one not shown (a new project). Reads go one at a time,
// so an older answer never overwrites a newer one. A project with no run
// yet shows up when the page opens, is shown again, or within 30 s.
export function useLiveProjects(client: OttoClient, fail: (err: unknown) => string): LiveProjects {
  const [projects, setProjects] = useState<ProjectRuns[] | undefined>(undefined);
  const [error, setError] = useState("");

  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    const shown = new Map<string, RunState>();
    let names: Set<string> | undefined;
    const runsOf = async (project: string) => {
      const { runs } = await client.runs.listRuns({ project, pageSize: lastRuns }, { signal });
      for (const run of runs) shown.set(run.id, run.state);
      return runs;
    };
    const readAll = async () => {
      const answer = await client.projects.listProjects({}, { signal });
      const runs = await Promise.all(answer.projects.map((project) => runsOf(project.name)));
      if (signal.aborted) return;
      names = new Set(answer.projects.map((project) => project.name));
      setProjects(answer.projects.map((project, i) => ({ project, runs: runs[i] })));
    };
    const readProject = async (name: string) => {
      const runs = await runsOf(name);
      if (signal.aborted) return;
      setProjects((list) => list?.map((entry) => (entry.project.name === name ? { ...entry, runs } : entry)));
    };

    // Project names to read again; "" for every project.
    const pending = new Set<string>();
    let working = false;
    const request = (name: string) => {
      pending.add(name);
      if (!working) void work();
    };
    const work = async () => {
      working = true;
      try {
        while (pending.size > 0 && !signal.aborted) {
          if (!names || [...pending].some((name) => !names!.has(name))) {
            pending.clear();
            await readAll();
          } else {
            const [name] = pending;
            pending.delete(name);
            await readProject(name);
          }
          setError("");
        }
      } catch (err) {
        if (!signal.aborted && !isAbort(err)) setError(fail(err));
      } finally {
        working = false;
      }
    };

    const follow = () =>
      followRuns(client, "", signal, {
        start: async () => request(""),
        changed(run) {
          if (run.project !== "" && shown.get(run.id) !== run.state) request(run.project);
        },
        failed: (err) => setError(fail(err)),
      });
    setProjects(undefined);
    void follow();
    // A project made elsewhere has no run yet to announce it: the projects
    // are read again when the page is shown again, and every 30 s.
    const readAgain = () => {
      if (document.visibilityState === "visible") request("");
    };
    document.addEventListener("visibilitychange", readAgain);
    const timer = setInterval(readAgain, 30_000);
    return () => {
      abort.abort();
      document.removeEventListener("visibilitychange", readAgain);
      clearInterval(timer);
    };
  }, [client]);

  return { projects, error };
}
