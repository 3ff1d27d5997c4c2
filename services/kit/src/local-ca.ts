import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate, randomBytes } from "node:crypto";
import { chmod, mkdir, readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { identityUri } from "./peer-identity.ts";
import { writeFileAtomically } from "./atomic-file.ts";

// A certificate authority of one machine's own, for `npm start` and tests:
// `<dir>/ca.pem` + `ca-key.pem`, and one certificate per process
// (`<name>.pem` + `<name>-key.pem`) naming its kind in a URI SAN, which is
// how servers tell which Otto process is calling them. Files are reused
// across restarts until they come within a month of expiring.

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const dayMs = 86_400_000;
const renewBeforeMs = 30 * dayMs;

export interface CertificateFiles {
  cert: string;
  key: string;
  ca: string;
}

export interface LocalCa {
  dir: string;
  caFile: string;
  // `hosts`: names or addresses it must also be valid for, besides this
  // machine's loopback (a public URL's host).
  issue(name: string, kind: string, hosts?: string[]): Promise<CertificateFiles>;
}

export async function ensureLocalCa(dir: string): Promise<LocalCa> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Private keys live here: a directory made looser by hand is closed again.
  await chmod(dir, 0o700);
  const caFile = join(dir, "ca.pem");
  const caKeyFile = join(dir, "ca-key.pem");
  let ca = await readReusable(caFile, caKeyFile);
  if (!ca) {
    const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      // Unique, so that clients trusting two Otto CAs tell them apart by name.
      name: `CN=Otto local CA ${randomBytes(4).toString("hex")}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 10 * 365 * dayMs),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    await writeFileAtomically(caKeyFile, await privateKeyPem(keys.privateKey));
    await writeFileAtomically(caFile, cert.toString("pem") + "\n", 0o644);
    ca = { certPem: cert.toString("pem"), keyPem: await readFile(caKeyFile, "utf8") };
  }
  const caCert = new X509Certificate(ca.certPem);
  const caKey = await importPrivateKey(ca.keyPem);
  return {
    dir,
    caFile,
    async issue(name, kind, hosts = []) {
      const certFile = join(dir, `${name}.pem`);
      const keyFile = join(dir, `${name}-key.pem`);
      const existing = await readReusable(certFile, keyFile);
      if (existing) {
        const current = new X509Certificate(existing.certPem);
        const names = current.subjectAltName?.split(", ") ?? [];
        const sameIdentity = names.includes(`URI:${identityUri(kind, name)}`) && hosts.every((host) => names.includes(sanText(host)));
        if (current.checkIssued(caCert) && current.verify(caCert.publicKey) && sameIdentity) return { cert: certFile, key: keyFile, ca: caFile };
      }
      const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${name}`,
        issuer: caCert.subject.replace(/\n/g, ", "),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 365 * dayMs),
        signingKey: caKey,
        publicKey: keys.publicKey,
        signingAlgorithm: algorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
          new x509.SubjectAlternativeNameExtension([
            { type: "dns", value: "localhost" },
            { type: "ip", value: "127.0.0.1" },
            { type: "ip", value: "::1" },
            ...hosts.map((host) => ({ type: isIP(host) ? ("ip" as const) : ("dns" as const), value: host })),
            { type: "url", value: identityUri(kind, name) },
          ]),
        ],
      });
      await writeFileAtomically(keyFile, await privateKeyPem(keys.privateKey));
      await writeFileAtomically(certFile, cert.toString("pem") + "\n", 0o644);
      return { cert: certFile, key: keyFile, ca: caFile };
    },
  };
}

// How Node writes a host in a certificate's subjectAltName.
function sanText(host: string): string {
  return isIP(host) ? `IP Address:${host}` : `DNS:${host}`;
}

async function readReusable(certFile: string, keyFile: string): Promise<{ certPem: string; keyPem: string } | undefined> {
  try {
    const [certPem, keyPem] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
    const cert = new X509Certificate(certPem);
    if (new Date(cert.validTo).getTime() - Date.now() < renewBeforeMs) return undefined;
    return { certPem, keyPem };
  } catch {
    return undefined;
  }
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString("hex");
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY") + "\n";
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  return crypto.subtle.importKey("pkcs8", der, algorithm, false, ["sign"]);
}
