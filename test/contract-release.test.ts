// otto.v1 cannot break by accident: `npm run check` compares the protos with
// the image of the last release (proto/released/otto-v1.binpb). Additions
// pass; a field removed or renumbered, or a method renamed, fails, saying what.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { breakingChanges } from "../scripts/contract-release.ts";

const root = join(import.meta.dirname, "..");

describe("the released otto.v1 contract", () => {
  let workspace: string;
  before(async () => {
    workspace = await mkdtemp(join(tmpdir(), "otto-contract-"));
  });
  after(async () => {
    if (workspace) await rm(workspace, { recursive: true, force: true });
  });

  // The repository's protos with `change` made to one file.
  async function changed(file: string, change: (text: string) => string): Promise<string> {
    await rm(join(workspace, "proto"), { recursive: true, force: true });
    await cp(join(root, "proto"), join(workspace, "proto"), { recursive: true });
    await cp(join(root, "buf.yaml"), join(workspace, "buf.yaml"));
    const path = join(workspace, "proto/otto/v1", file);
    const before = await readFile(path, "utf8");
    const after = change(before);
    assert.notEqual(after, before, "the change applies");
    await writeFile(path, after);
    return breakingChanges(workspace);
  }

  it("holds for the protos as they are", () => {
    assert.equal(breakingChanges(), "");
  });

  it("takes added fields, methods and services", async () => {
    assert.equal(
      await changed("log_service.proto", (text) =>
        text
          .replace("  bool raw = 6;", "  bool raw = 6;\n  bool newest_first = 99;")
          .replace("service LogService {", "service LogService {\n  rpc CountLines(ReadLogRequest) returns (ReadLogResponse);")
          .concat("\nservice LogStatsService {\n  rpc Stats(ReadLogRequest) returns (ReadLogResponse);\n}\n"),
      ),
      "",
    );
  });

  it("refuses a removed field, a renumbered one and a renamed method, naming each", async () => {
    assert.match(await changed("log_service.proto", (text) => text.replace("  bool raw = 6;", "")), /field "6" with name "raw" on message "ReadLogRequest" was deleted/);
    assert.match(await changed("log_service.proto", (text) => text.replace("  bool raw = 6;", "  bool raw = 60;")), /"raw"/);
    assert.match(await changed("run_service.proto", (text) => text.replace("rpc CancelRun(", "rpc StopRun(")), /CancelRun/);
  });
});
