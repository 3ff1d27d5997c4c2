import { RunState } from "@otto/gen/v1/run_pb";
import type { PipelineStatus } from "@otto/gen/v1/run_service_pb";
import { xmlText } from "./xml-text.ts";

// What a pipeline's badge says: how its last finished run ended, else how
// its latest run stands.
export function badgeState(pipeline: PipelineStatus | undefined): { text: string; colour: string } {
  const state = pipeline?.lastFinished?.state ?? pipeline?.latest?.state;
  switch (state) {
    case RunState.SUCCEEDED:
      return { text: "passing", colour: "#2e7d32" };
    case RunState.FAILED:
      return { text: "failing", colour: "#c62828" };
    case RunState.CANCELED:
      return { text: "canceled", colour: "#6d6d6d" };
    case RunState.RUNNING:
      return { text: "running", colour: "#1565c0" };
    case RunState.QUEUED:
      return { text: "queued", colour: "#6d6d6d" };
    default:
      return { text: "unknown", colour: "#9e9e9e" };
  }
}

// A flat two-part badge: the name on grey, the state on its colour. Widths
// are estimated from the number of characters (11 px Verdana is ~7 px a
// character), which is all a badge needs.
export function badgeSvg(label: string, state: { text: string; colour: string }): string {
  const width = (text: string) => Math.round([...text].length * 7 + 12);
  const left = width(label);
  const right = width(state.text);
  const total = left + right;
  const title = xmlText(`${label}: ${state.text}`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="20" role="img" aria-label="${title}">
  <title>${title}</title>
  <rect width="${left}" height="20" fill="#555"/>
  <rect x="${left}" width="${right}" height="20" fill="${state.colour}"/>
  <g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">
    <text x="${left / 2}" y="14">${xmlText(label)}</text>
    <text x="${left + right / 2}" y="14">${xmlText(state.text)}</text>
  </g>
</svg>
`;
}
