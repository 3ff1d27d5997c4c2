import type { Client, ServiceImpl } from "@connectrpc/connect";
import { ProjectService } from "@otto/gen/v1/project_service_pb";
import type { ServiceCaller } from "@otto/kit/service-caller";

// The public ProjectService: every call goes to a coordinator, which alone
// holds the key that seals webhook secrets. Reads are tried again on
// another coordinator; writes are passed on once.
export function projectServiceImpl(peers: ServiceCaller): ServiceImpl<typeof ProjectService> {
  const read = <T>(call: (c: Client<typeof ProjectService>) => Promise<T>) => peers.call("coordinator", ProjectService, call, { idempotent: true, retryForMs: 5_000 });
  const write = <T>(call: (c: Client<typeof ProjectService>) => Promise<T>) => peers.call("coordinator", ProjectService, call);
  return {
    createProject: (req, ctx) => write((c) => c.createProject(req, { signal: ctx.signal })),
    getProject: (req, ctx) => read((c) => c.getProject(req, { signal: ctx.signal })),
    listProjects: (req, ctx) => read((c) => c.listProjects(req, { signal: ctx.signal })),
    updateProject: (req, ctx) => write((c) => c.updateProject(req, { signal: ctx.signal })),
    deleteProject: (req, ctx) => write((c) => c.deleteProject(req, { signal: ctx.signal })),
    rotateWebhookSecret: (req, ctx) => write((c) => c.rotateWebhookSecret(req, { signal: ctx.signal })),
    approveFork: (req, ctx) => read((c) => c.approveFork(req, { signal: ctx.signal })),
    createSchedule: (req, ctx) => write((c) => c.createSchedule(req, { signal: ctx.signal })),
    listSchedules: (req, ctx) => read((c) => c.listSchedules(req, { signal: ctx.signal })),
    deleteSchedule: (req, ctx) => write((c) => c.deleteSchedule(req, { signal: ctx.signal })),
    // With a request id it is safe to send again.
    runProject: (req, ctx) => (req.requestId ? read : write)((c) => c.runProject(req, { signal: ctx.signal })),
  };
}
