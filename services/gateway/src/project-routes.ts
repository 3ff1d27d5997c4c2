import type { ServiceImpl } from "@connectrpc/connect";
import { ProjectService } from "@otto/gen/v1/project_service_pb";
import { forwardCalls } from "@otto/kit/forward-calls";
import type { ServiceCaller } from "@otto/kit/service-caller";

// The public ProjectService: every call goes to a coordinator, which alone
// holds the key that seals webhook secrets; one that may be made again is
// tried on another coordinator when one does not answer.
export function projectServiceImpl(peers: ServiceCaller): ServiceImpl<typeof ProjectService> {
  const coordinator = forwardCalls(peers, "coordinator", ProjectService);
  return {
    createProject: (req, ctx) => coordinator("createProject", req, (c) => c.createProject(req, { signal: ctx.signal })),
    getProject: (req, ctx) => coordinator("getProject", req, (c) => c.getProject(req, { signal: ctx.signal })),
    listProjects: (req, ctx) => coordinator("listProjects", req, (c) => c.listProjects(req, { signal: ctx.signal })),
    updateProject: (req, ctx) => coordinator("updateProject", req, (c) => c.updateProject(req, { signal: ctx.signal })),
    deleteProject: (req, ctx) => coordinator("deleteProject", req, (c) => c.deleteProject(req, { signal: ctx.signal })),
    rotateWebhookSecret: (req, ctx) => coordinator("rotateWebhookSecret", req, (c) => c.rotateWebhookSecret(req, { signal: ctx.signal })),
    approveFork: (req, ctx) => coordinator("approveFork", req, (c) => c.approveFork(req, { signal: ctx.signal })),
    createSchedule: (req, ctx) => coordinator("createSchedule", req, (c) => c.createSchedule(req, { signal: ctx.signal })),
    listSchedules: (req, ctx) => coordinator("listSchedules", req, (c) => c.listSchedules(req, { signal: ctx.signal })),
    deleteSchedule: (req, ctx) => coordinator("deleteSchedule", req, (c) => c.deleteSchedule(req, { signal: ctx.signal })),
    runProject: (req, ctx) => coordinator("runProject", req, (c) => c.runProject(req, { signal: ctx.signal })),
  };
}
