// How large a YAML document is with every alias expanded, measured without
// expanding anything: each anchored node is measured once, and an alias adds
// its anchor's size. Within the alias limit, aliases of aliases can still make
// a small file stand for gigabytes; this finds out before anything is built.
import { isAlias, isMap, isScalar, isSeq } from "yaml";
import type { Document, Node, ParsedNode } from "yaml";

export interface ExpansionLimits {
  nodes: number; // scalars, mappings and lists
  textChars: number; // the scalars' text
}

export type Expansion = { ok: true; nodes: number; textChars: number } | { ok: false; limit: keyof ExpansionLimits; at: ParsedNode };

interface Size {
  nodes: number;
  textChars: number;
}

class Oversize {
  readonly limit: keyof ExpansionLimits;
  readonly at: ParsedNode;
  constructor(limit: keyof ExpansionLimits, at: ParsedNode) {
    this.limit = limit;
    this.at = at;
  }
}

export function measureExpansion(doc: Document.Parsed, limits: ExpansionLimits): Expansion {
  const anchored = new Map<Node, Size>();
  const measuring = new Set<Node>();
  // The document's size so far, in document order with aliases expanded: it
  // grows at scalars, collections and aliases, so it crosses a limit at one.
  const sofar: Size = { nodes: 0, textChars: 0 };
  const count = (size: Size, at: ParsedNode) => {
    sofar.nodes += size.nodes;
    sofar.textChars += size.textChars;
    if (sofar.nodes > limits.nodes) throw new Oversize("nodes", at);
    if (sofar.textChars > limits.textChars) throw new Oversize("textChars", at);
  };

  // The size of `node` with its aliases expanded.
  const measure = (node: ParsedNode | null): Size => {
    if (node === null) return { nodes: 0, textChars: 0 };
    if (isAlias(node)) {
      const target = node.resolve(doc) as ParsedNode | undefined;
      // An alias to no anchor, or to a node that contains it, is not expanded
      // (the pipeline's checks refuse both).
      const size = target === undefined || measuring.has(target) ? { nodes: 1, textChars: 0 } : (anchored.get(target) ?? measure(target));
      count(size, node);
      return size;
    }
    if (isScalar(node)) {
      const size = { nodes: 1, textChars: typeof node.value === "string" ? node.value.length : (node.source?.length ?? 0) };
      count(size, node);
      if (node.anchor) anchored.set(node, size);
      return size;
    }
    count({ nodes: 1, textChars: 0 }, node);
    const total = { nodes: 1, textChars: 0 };
    const add = (child: unknown) => {
      const size = measure(child as ParsedNode | null);
      total.nodes += size.nodes;
      total.textChars += size.textChars;
    };
    measuring.add(node);
    if (isMap(node)) {
      for (const pair of node.items) {
        add(pair.key);
        add(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) add(item);
    }
    measuring.delete(node);
    if (node.anchor) anchored.set(node, total);
    return total;
  };

  try {
    measure(doc.contents);
    return { ok: true, ...sofar };
  } catch (err) {
    if (err instanceof Oversize) return { ok: false, limit: err.limit, at: err.at };
    throw err;
  }
}
