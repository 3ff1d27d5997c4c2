// Where a laid-out graph's boxes and lines go, in pixels. A line between
// neighbouring columns is one curve inside the gap between them. A line
// that skips columns crosses each column between under all its boxes, in a
// lane of its own there, and bends only inside the gaps: no line passes
// behind a box.
import type { GraphLayout } from "./graph-layout.ts";

export interface GraphSizes {
  boxWidth: number;
  boxHeight: number;
  gapX: number;
  gapY: number;
  // Between two lanes under a column, and from its last box to the first.
  laneGap: number;
}

// A curve bends only between x1 and x2; a line is straight.
export interface Hop {
  kind: "curve" | "line";
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface DrawnGraph {
  boxes: Map<string, { x: number; y: number }>;
  edges: { from: string; to: string; hops: Hop[] }[];
  width: number;
  height: number;
}

export function drawGraph(layout: GraphLayout, sizes: GraphSizes): DrawnGraph {
  const { boxWidth, boxHeight, gapX, gapY, laneGap } = sizes;
  const columnX = (column: number) => column * (boxWidth + gapX);
  const boxes = new Map(layout.jobs.map((job) => [job.name, { x: columnX(job.column), y: job.row * (boxHeight + gapY) }]));
  const columnOf = new Map(layout.jobs.map((job) => [job.name, job.column]));
  const rowsIn = new Array<number>(layout.columns).fill(0);
  for (const job of layout.jobs) rowsIn[job.column] = Math.max(rowsIn[job.column], job.row + 1);
  const bottom = (column: number) => rowsIn[column] * (boxHeight + gapY) - gapY;
  const lanesUsed = new Array<number>(layout.columns).fill(0);
  const laneY = (column: number) => bottom(column) + laneGap * ++lanesUsed[column];

  const edges = layout.edges.map(({ from, to }) => {
    const start = boxes.get(from)!;
    const end = boxes.get(to)!;
    const hops: Hop[] = [];
    let x = start.x + boxWidth;
    let y = start.y + boxHeight / 2;
    for (let column = columnOf.get(from)! + 1; column < columnOf.get(to)!; column++) {
      const lane = laneY(column);
      hops.push({ kind: "curve", x1: x, y1: y, x2: columnX(column), y2: lane });
      hops.push({ kind: "line", x1: columnX(column), y1: lane, x2: columnX(column) + boxWidth, y2: lane });
      x = columnX(column) + boxWidth;
      y = lane;
    }
    hops.push({ kind: "curve", x1: x, y1: y, x2: end.x, y2: end.y + boxHeight / 2 });
    return { from, to, hops };
  });
  const columns = Math.max(1, layout.columns);
  const lowest = Math.max(0, ...rowsIn.map((_, column) => bottom(column) + laneGap * lanesUsed[column]));
  return { boxes, edges, width: columns * (boxWidth + gapX) - gapX, height: Math.max(boxHeight, lowest + (lanesUsed.some((n) => n > 0) ? laneGap : 0)) };
}

// An SVG path's `d` for a line's hops.
export function pathOf(hops: readonly Hop[]): string {
  if (hops.length === 0) return "";
  const parts = [`M ${hops[0].x1} ${hops[0].y1}`];
  for (const hop of hops) {
    if (hop.kind === "line") parts.push(`L ${hop.x2} ${hop.y2}`);
    else {
      const bend = (hop.x2 - hop.x1) / 2;
      parts.push(`C ${hop.x1 + bend} ${hop.y1}, ${hop.x2 - bend} ${hop.y2}, ${hop.x2} ${hop.y2}`);
    }
  }
  return parts.join(" ");
}
