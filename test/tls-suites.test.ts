// Every Otto server offers TLS 1.3, and TLS 1.2 only with AEAD suites
// (ECDHE with AES-GCM or ChaCha20-Poly1305); CBC suites and TLS 1.0/1.1 are
// refused at the handshake.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { startTestOtto, type TestOtto } from "./helpers/otto.ts";

type Handshake = { ok: true; protocol: string; cipher: string } | { ok: false; error: string };

function handshake(url: string, ca: Buffer, options: tls.ConnectionOptions): Promise<Handshake> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ca, ...options }, () => {
      resolve({ ok: true, protocol: socket.getProtocol() ?? "", cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.on("error", (err) => resolve({ ok: false, error: err.message }));
  });
}

describe("TLS suites", () => {
  let otto: TestOtto;
  let ca: Buffer;
  let servers: Array<{ name: string; url: string }>;

  before(async () => {
    otto = await startTestOtto({ agents: 0 });
    ca = readFileSync(otto.caFile!);
    servers = otto.supervisor
      .info()
      .filter((p) => p.url?.startsWith("https:"))
      .map((p) => ({ name: p.name, url: p.url! }));
    assert.ok(servers.some((s) => s.name === "gateway") && servers.length >= 5, servers.map((s) => s.name).join(", "));
  });

  after(async () => {
    await otto?.stopAndClean();
  });

  it("refuses TLS 1.2 with only CBC suites", async () => {
    const cbc = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES128-SHA", "AES128-SHA", "AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"];
    for (const { name, url } of servers) {
      for (const ciphers of [cbc.slice(0, 5).join(":"), "ECDHE-ECDSA-AES128-SHA256"]) {
        const result = await handshake(url, ca, { maxVersion: "TLSv1.2", ciphers });
        assert.equal(result.ok, false, `${name} accepted ${ciphers}: ${JSON.stringify(result)}`);
        assert.match((result as { error: string }).error, /handshake failure/, name);
      }
    }
  });

  it("accepts TLS 1.2 with AES-GCM and ChaCha20-Poly1305, and TLS 1.3", async () => {
    for (const { name, url } of servers) {
      for (const cipher of ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]) {
        const result = await handshake(url, ca, { maxVersion: "TLSv1.2", ciphers: cipher });
        assert.deepEqual(result, { ok: true, protocol: "TLSv1.2", cipher }, name);
      }
      const modern = await handshake(url, ca, { minVersion: "TLSv1.3" });
      assert.equal(modern.ok && modern.protocol, "TLSv1.3", name);
    }
  });

  it("refuses TLS 1.0 and 1.1", async () => {
    for (const { name, url } of servers) {
      for (const version of ["TLSv1", "TLSv1.1"] as const) {
        const result = await handshake(url, ca, { minVersion: version, maxVersion: version, ciphers: "DEFAULT@SECLEVEL=0" });
        assert.equal(result.ok, false, `${name} accepted ${version}`);
      }
    }
  });
});
