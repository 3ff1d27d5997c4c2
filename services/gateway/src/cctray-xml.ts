import { timestampDate } from "@bufbuild/protobuf/wkt";
import { RunState } from "@otto/gen/v1/run_pb";
import type { PipelineRun, PipelineStatus } from "@otto/gen/v1/run_service_pb";
import { xmlText } from "./xml-text.ts";

// The cctray format (CCMenu, Nevergreen, CCTray and build lights read it):
// one Project per pipeline (per project for a project's runs).
export function cctrayXml(pipelines: PipelineStatus[], runPage: (runId: string) => string): string {
  const projects = pipelines.map((pipeline) => {
    const last = pipeline.lastFinished;
    const shown = last ?? pipeline.latest;
    const attributes: [string, string][] = [
      ["name", pipeline.name],
      ["activity", pipeline.building ? "Building" : "Sleeping"],
      ["lastBuildStatus", last ? buildStatus(last.state) : "Unknown"],
      ["lastBuildLabel", shown ? labelOf(shown) : ""],
      ["lastBuildTime", shown ? timeOf(shown) : ""],
      ["webUrl", shown ? runPage(shown.id) : ""],
    ];
    return `  <Project ${attributes.map(([key, value]) => `${key}="${xmlText(value)}"`).join(" ")}/>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Projects>\n${projects.map((p) => `${p}\n`).join("")}</Projects>\n`;
}

function buildStatus(state: RunState): string {
  switch (state) {
    case RunState.SUCCEEDED:
      return "Success";
    case RunState.FAILED:
      return "Failure";
    case RunState.CANCELED:
      return "Exception";
    default:
      return "Unknown";
  }
}

// A project's run number, else the run's id.
function labelOf(run: PipelineRun): string {
  return run.number > 0n ? String(run.number) : run.id;
}

function timeOf(run: PipelineRun): string {
  const at = run.finishedAt ?? run.createdAt;
  return at ? timestampDate(at).toISOString() : "";
}
