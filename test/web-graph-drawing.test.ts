// The run graph's lines: none passes behind a job's box, however many
// columns it skips.
import { test } from "node:test";
import assert from "node:assert/strict";
import { drawGraph, pathOf, type DrawnGraph, type GraphSizes } from "@otto/web/graph-drawing";
import { layOutJobs } from "@otto/web/graph-layout";

const sizes: GraphSizes = { boxWidth: 240, boxHeight: 104, gapX: 56, gapY: 20, laneGap: 12 };

// Each hop against each box: a curve's whole x range (its control points
// stay inside it) and a line's span must miss every box's inside.
function crossings(drawn: DrawnGraph): string[] {
  const found: string[] = [];
  for (const edge of drawn.edges) {
    for (const hop of edge.hops) {
      for (const [name, box] of drawn.boxes) {
        const overlapsX = Math.min(hop.x1, hop.x2) < box.x + sizes.boxWidth && Math.max(hop.x1, hop.x2) > box.x;
        const overlapsY =
          hop.kind === "curve" ? true : Math.min(hop.y1, hop.y2) < box.y + sizes.boxHeight && Math.max(hop.y1, hop.y2) > box.y;
        if (overlapsX && overlapsY) found.push(`${edge.from}->${edge.to} crosses ${name}`);
      }
    }
  }
  return found;
}

test("a line that skips columns goes under their boxes, each in its own lane, and bends only between columns", () => {
  const drawn = drawGraph(
    layOutJobs([
      { name: "build", needs: [] },
      { name: "lint", needs: [] },
      { name: "unit", needs: ["build"] },
      { name: "e2e", needs: ["build"] },
      { name: "package", needs: ["unit"] },
      { name: "deploy", needs: ["package", "build", "lint"] },
    ]),
    sizes,
  );
  assert.deepEqual(crossings(drawn), []);
  const lanes = (from: string, to: string) =>
    drawn.edges.find((edge) => edge.from === from && edge.to === to)!.hops.filter((hop) => hop.kind === "line").map((hop) => hop.y1);
  // build -> deploy skips the columns of unit/e2e and package; lint -> deploy too.
  assert.equal(lanes("build", "deploy").length, 2);
  assert.equal(lanes("lint", "deploy").length, 2);
  const unitColumnBottom = 2 * (sizes.boxHeight + sizes.gapY) - sizes.gapY;
  assert.ok(lanes("build", "deploy")[0] > unitColumnBottom);
  assert.notEqual(lanes("build", "deploy")[0], lanes("lint", "deploy")[0], "two lines never share a lane");
  assert.ok(drawn.height >= Math.max(...lanes("lint", "deploy")), "the lanes are inside the drawing");
  assert.deepEqual(lanes("build", "unit"), []);
  assert.match(pathOf(drawn.edges[0].hops), /^M 240 52 C /);
});

test("the drawing is one box for a run of one job, and a straight chain needs no lanes", () => {
  const one = drawGraph(layOutJobs([{ name: "only", needs: [] }]), sizes);
  assert.deepEqual({ width: one.width, height: one.height, edges: one.edges.length }, { width: 240, height: 104, edges: 0 });
  const chain = drawGraph(
    layOutJobs([
      { name: "a", needs: [] },
      { name: "b", needs: ["a"] },
      { name: "c", needs: ["b"] },
    ]),
    sizes,
  );
  assert.equal(chain.height, sizes.boxHeight);
  assert.deepEqual(crossings(chain), []);
});
