import type { ArtifactSource } from "@otto/kit/artifact-sources";
import { RunState } from "./states.ts";

export type { ArtifactSource };

// The attempts whose artifacts a claimed job gets in its workspace, as a
// column of the claim's statement (`run`: the alias of its runs row; `job`:
// an expression of its name): each of its needs that SUCCEEDED, keeps
// artifacts and is not opted out of (`needs: [{job: build, artifacts:
// false}]`), at the attempt that succeeded: its own task's, or, for a job a
// rerun reused, the one of the run it was reused from. In the order of the
// pipeline's jobs; the task's token vouches for exactly this list. What is
// read from the pipeline is read once per claim, not once per job.
export function artifactSourcesColumn(run: string, job: string): string {
  const optedOut = `SELECT jsonb_array_elements_text(jsonb_path_query_array(${run}.pipeline, '$.jobs[*] ? (@.name == $job).needsWithoutArtifacts[*]', jsonb_build_object('job', ${job})))`;
  const keepingArtifacts = `SELECT jsonb_array_elements_text(jsonb_path_query_array(${run}.pipeline, '$.jobs[*] ? (exists(@.artifacts[*])).name'))`;
  const attempt = "coalesce(n.reused_from_attempt, nt.attempt)";
  return `(SELECT coalesce(json_agg(json_build_object('runId', coalesce(n.reused_from_run, n.run_id), 'job', n.name, 'attempt', ${attempt}) ORDER BY n.position), '[]')
    FROM coordinator.jobs me
      CROSS JOIN LATERAL unnest(me.needs) AS need(name)
      JOIN coordinator.jobs n ON n.run_id = me.run_id AND n.name = need.name
      LEFT JOIN coordinator.tasks nt ON nt.run_id = n.run_id AND nt.job = n.name
    WHERE me.run_id = ${run}.id AND me.name = ${job} AND n.state = ${RunState.SUCCEEDED} AND ${attempt} >= 1
      AND need.name NOT IN (${optedOut}) AND need.name IN (${keepingArtifacts})) AS artifact_sources`;
}
