// Branch and tag globs: `*` matches within one path segment, `**` across
// segments; everything else is itself.
export function globMatches(glob: string, name: string): boolean {
  let pattern = "";
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith("**", i)) {
      pattern += ".*";
      i++;
    } else if (glob[i] === "*") {
      pattern += "[^/]*";
    } else {
      pattern += glob[i].replace(/[.+?^${}()|[\]\\/-]/g, "\\$&");
    }
  }
  return new RegExp(`^${pattern}$`).test(name);
}

export function anyGlobMatches(globs: readonly string[], name: string): boolean {
  return globs.some((glob) => globMatches(glob, name));
}
