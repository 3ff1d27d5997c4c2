import type { SystemOptions } from "./system.ts";

// DATABASE_URL and OTTO_S3_* point the launcher at existing storage instead
// of the embedded defaults.
export function storageFromEnv(env: Record<string, string | undefined>): Pick<SystemOptions, "databaseUrl" | "s3"> {
  const s3 = env.OTTO_S3_ENDPOINT
    ? {
        endpoint: env.OTTO_S3_ENDPOINT,
        accessKey: env.OTTO_S3_ACCESS_KEY ?? "",
        secretKey: env.OTTO_S3_SECRET_KEY ?? "",
        bucket: env.OTTO_S3_BUCKET ?? "otto",
        publicEndpoint: env.OTTO_S3_PUBLIC_ENDPOINT || undefined,
      }
    : undefined;
  return { databaseUrl: env.DATABASE_URL || undefined, s3 };
}
