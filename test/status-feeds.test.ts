import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { RunState } from "@otto/gen/v1/run_pb";
import { PipelineStatusSchema, type PipelineStatus } from "@otto/gen/v1/run_service_pb";
import { cctrayXml } from "@otto/gateway/cctray-xml";
import { badgeState, badgeSvg } from "@otto/gateway/status-badge";
import { tokenOf } from "@otto/gateway/http-token";

// cctray.xml and badges as the gateway writes them, from pipelines' states.

const at = (iso: string) => timestampFromDate(new Date(iso));

function pipeline(name: string, fields: MessageInitShape<typeof PipelineStatusSchema>): PipelineStatus {
  return create(PipelineStatusSchema, { name, ...fields });
}

const pipelines = [
  pipeline("ok", {
    latest: { id: "a1", state: RunState.SUCCEEDED, createdAt: at("2026-11-29T01:00:00Z"), finishedAt: at("2026-11-29T01:02:03.456Z") },
    lastFinished: { id: "a1", state: RunState.SUCCEEDED, createdAt: at("2026-11-29T01:00:00Z"), finishedAt: at("2026-11-29T01:02:03.456Z") },
  }),
  pipeline("app", {
    project: "app",
    building: true,
    latest: { id: "b2", state: RunState.RUNNING, number: 8n, createdAt: at("2026-11-29T02:00:00Z") },
    lastFinished: { id: "b1", state: RunState.FAILED, number: 7n, createdAt: at("2026-11-29T01:00:00Z"), finishedAt: at("2026-11-29T01:30:00Z") },
  }),
  pipeline("stopped", { latest: { id: "c1", state: RunState.CANCELED, finishedAt: at("2026-11-29T00:00:00Z") }, lastFinished: { id: "c1", state: RunState.CANCELED, finishedAt: at("2026-11-29T00:00:00Z") } }),
  pipeline(`<b>"x" & 'y'</b>`, { latest: { id: "d1", state: RunState.QUEUED, createdAt: at("2026-11-29T03:00:00Z") } }),
];

test("cctray.xml has one Project per pipeline with every attribute, its value from the set cctray allows, and text escaped", () => {
  const xml = cctrayXml(pipelines, (id) => `https://ci.example.com/runs/${id}`);
  assert.equal(XMLValidator.validate(xml), true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", isArray: (name) => name === "Project" }).parse(xml);
  const projects = doc.Projects.Project as Record<string, string>[];
  assert.deepEqual(
    projects.map((p) => [p.name, p.activity, p.lastBuildStatus, p.lastBuildLabel, p.lastBuildTime, p.webUrl]),
    [
      ["ok", "Sleeping", "Success", "a1", "2026-11-29T01:02:03.456Z", "https://ci.example.com/runs/a1"],
      ["app", "Building", "Failure", "7", "2026-11-29T01:30:00.000Z", "https://ci.example.com/runs/b1"],
      ["stopped", "Sleeping", "Exception", "c1", "2026-11-29T00:00:00.000Z", "https://ci.example.com/runs/c1"],
      [`<b>"x" & 'y'</b>`, "Sleeping", "Unknown", "d1", "2026-11-29T03:00:00.000Z", "https://ci.example.com/runs/d1"],
    ],
  );
  for (const p of projects) {
    assert.ok(["Sleeping", "Building", "CheckingModifications"].includes(p.activity));
    assert.ok(["Success", "Failure", "Exception", "Unknown"].includes(p.lastBuildStatus));
    assert.match(p.lastBuildTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
  }
  assert.ok(!xml.includes("<b>"), "markup in a name is escaped");
});

test("a badge is an SVG document that names the pipeline and its state, escaped", () => {
  const svg = badgeSvg(`<b>"x" & 'y'</b>`, badgeState(pipelines[1]));
  assert.equal(XMLValidator.validate(svg), true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(svg);
  assert.equal(doc.svg.xmlns, "http://www.w3.org/2000/svg");
  assert.equal(doc.svg.title, `<b>"x" & 'y'</b>: failing`);
  assert.deepEqual(
    pipelines.map((p) => badgeState(p).text),
    ["passing", "failing", "canceled", "queued"],
  );
  assert.equal(badgeState(undefined).text, "unknown");
});

test("the token comes as a bearer token or as Basic authentication's password, with any user name", () => {
  const basic = (pair: string) => `Basic ${Buffer.from(pair).toString("base64")}`;
  assert.equal(tokenOf("Bearer otto_api_x"), "otto_api_x");
  assert.equal(tokenOf(basic("me:otto_api_y")), "otto_api_y");
  assert.equal(tokenOf(basic(":otto_api_z")), "otto_api_z");
  assert.equal(tokenOf(basic("me:")), undefined);
  assert.equal(tokenOf(basic("no colon")), undefined);
  assert.equal(tokenOf(undefined), undefined);
  assert.equal(tokenOf("Digest abc"), undefined);
});
