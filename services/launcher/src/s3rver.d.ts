declare module "s3rver" {
  import type { IncomingMessage, ServerResponse } from "node:http";
  export default class S3rver {
    constructor(options: { directory: string; silent?: boolean; vhostBuckets?: boolean; serviceEndpoint?: string });
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}

declare module "s3rver/lib/models/account.js" {
  interface Account {
    createKeyPair(accessKeyId: string, secretAccessKey: string): void;
    revokeAccessKey(accessKeyId: string): void;
  }
  const account: { DUMMY_ACCOUNT: Account };
  export default account;
}

declare module "s3rver/lib/stores/filesystem.js" {
  export default class FilesystemStore {
    getBucketPath(bucket: string): string;
    getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    deleteObject(bucket: string, key: string): Promise<void>;
  }
}
