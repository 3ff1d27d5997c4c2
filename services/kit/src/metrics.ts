import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

// This process's metrics, served in Prometheus text format on /metrics:
// Node's own (CPU, memory, event loop, GC) plus Otto's, all named otto_*.
export const metrics = new Registry();
// The event loop's delay is sampled every 100 ms, not every 10 (prom-client's
// default): each sample wakes the process, and 100 wake-ups a second in
// every process cost the machine more than some of Otto's work.
collectDefaultMetrics({ register: metrics, eventLoopMonitoringPrecision: 100 });

export const rpcRequests = new Counter({
  name: "otto_rpc_requests_total",
  help: "RPCs handled, by method and Connect code",
  labelNames: ["method", "code"],
  registers: [metrics],
});

export const rpcDuration = new Histogram({
  name: "otto_rpc_duration_seconds",
  help: "Time to handle an RPC (to the end of the stream for streaming methods), by method and Connect code",
  labelNames: ["method", "code"],
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [metrics],
});

// A gauge whose values are read when Prometheus scrapes.
export function gaugeOnScrape(
  name: string,
  help: string,
  labelNames: string[],
  read: () => Promise<Array<{ labels?: Record<string, string>; value: number }>>,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [metrics],
    async collect() {
      this.reset();
      for (const { labels, value } of await read()) {
        if (labels) this.set(labels, value);
        else this.set(value);
      }
    },
  });
}

export { Counter, Gauge, Histogram };
