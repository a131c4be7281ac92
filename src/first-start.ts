/**
 * On a fresh install, a demo gateway a newcomer can connect to in a minute: a self-signed test
 * certificate (clearly marked, not for production), one one-party device, and the exact commands to
 * try it. Skipped when any gateway exists or GATEHOUSE_DEMO=off.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createSelfSignedCertificate } from './core/self-signed.ts';
import type { Registry } from './registry/index.ts';

export interface DemoGateway {
  gatewayId: string;
  url: string;
  port: number;
  username: string;
  password: string;
  caFile: string;
}

export const DEMO_GATEWAY_NAME = 'demo_gateway';
export const DEMO_USERNAME = 'demo-device';

export async function seedDemoGateway(registry: Registry, options: { dataDir: string; publicHost: string; port: number }): Promise<DemoGateway | null> {
  if ((await registry.gateways.list()).length > 0) return null;
  const hosts = [...new Set([options.publicHost, 'localhost', '127.0.0.1'])];
  const cert = await createSelfSignedCertificate({ hosts, days: 365 });
  const { gateway } = await registry.gateways.create({
    name: DEMO_GATEWAY_NAME,
    port: options.port,
    authType: 'ONE_PARTY',
    certificates: { serverCertificateChain: cert.certificatePem, serverPrivateKey: cert.privateKeyPem },
  });
  const password = randomBytes(12).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x');
  await registry.devices.create(gateway.productKey, { username: DEMO_USERNAME, password });
  const caFile = path.join(options.dataDir, 'demo-gateway-cert.pem');
  await writeFile(caFile, cert.certificatePem, { mode: 0o600 }); // a public certificate, but the data directory is owner-only throughout
  return { gatewayId: gateway.id, url: gateway.url, port: gateway.port, username: DEMO_USERNAME, password, caFile };
}
