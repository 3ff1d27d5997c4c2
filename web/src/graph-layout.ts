// Where each job of a run goes in its graph: a job's column is one past the
// furthest of the jobs it needs (jobs that need nothing in column 0), and
// within a column jobs keep the run's order. Needs naming no job of the run
// are left out, and a cycle (which the rules forbid) cannot loop forever.

export interface JobNode {
  name: string;
  needs: readonly string[];
}

export interface PlacedJob {
  name: string;
  column: number;
  row: number;
}

export interface GraphLayout {
  jobs: PlacedJob[];
  edges: { from: string; to: string }[];
  columns: number;
  rows: number;
}

export function layOutJobs(jobs: readonly JobNode[]): GraphLayout {
  const byName = new Map(jobs.map((job) => [job.name, job]));
  const columns = new Map<string, number>();
  const columnOf = (name: string, seen: Set<string>): number => {
    const known = columns.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) return 0;
    seen.add(name);
    const needs = (byName.get(name)?.needs ?? []).filter((need) => byName.has(need));
    const column = needs.length === 0 ? 0 : 1 + Math.max(...needs.map((need) => columnOf(need, seen)));
    columns.set(name, column);
    return column;
  };
  const rowsUsed: number[] = [];
  const placed = jobs.map((job) => {
    const column = columnOf(job.name, new Set());
    const row = rowsUsed[column] ?? 0;
    rowsUsed[column] = row + 1;
    return { name: job.name, column, row };
  });
  const edges = jobs.flatMap((job) => job.needs.filter((need) => byName.has(need)).map((need) => ({ from: need, to: job.name })));
  return { jobs: placed, edges, columns: rowsUsed.length, rows: Math.max(0, ...rowsUsed.map((n) => n ?? 0)) };
}
