import { rename, rm, writeFile } from "node:fs/promises";

// Writes a file whole under a temporary name and renames it into place, so a
// reader never sees half a key, token or list; private (0600) unless told
// otherwise.
export async function writeFileAtomically(file: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  // Made anew ("wx"), so the mode given is the mode it gets.
  await rm(tmp, { force: true });
  await writeFile(tmp, text, { mode, flag: "wx" });
  await rename(tmp, file);
}
