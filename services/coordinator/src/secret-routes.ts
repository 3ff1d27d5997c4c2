import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AdminService } from "@otto/gen/v1/admin_service_pb";
import type { SecretStore } from "./secret-store.ts";

// The secret half of AdminService, which the gateway passes on to a
// coordinator: only coordinators hold the key.
export function secretRoutes(secrets: SecretStore): Partial<ServiceImpl<typeof AdminService>> {
  return {
    async setSecret(req) {
      await secrets.set(req.name, req.value);
      return {};
    },
    async listSecrets() {
      const list = await secrets.list();
      return { secrets: list.map((s) => ({ name: s.name, updatedAt: timestampFromDate(s.updatedAt) })) };
    },
    async deleteSecret(req) {
      await secrets.delete(req.name);
      return {};
    },
  };
}
