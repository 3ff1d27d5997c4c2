import type { ServerResponse } from "node:http";

// An S3 error answer: the status and the XML body S3 clients parse.
export interface S3Error {
  status: number;
  code: string;
  message: string;
}

export function sendS3Error(res: ServerResponse, error: S3Error, resource: string, method: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${escapeXml(error.code)}</Code>` +
    `<Message>${escapeXml(error.message)}</Message><Resource>${escapeXml(resource)}</Resource></Error>`;
  // The body of a refused request is not read: the connection closes after the answer.
  res.writeHead(error.status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(method === "HEAD" ? undefined : body);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
