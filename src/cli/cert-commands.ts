/** `gatehouse certs self-signed`: a throwaway server certificate for trying a gateway without one's own PKI. */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createSelfSignedCertificate } from '../core/self-signed.ts';

export function registerCertCommands(program: Command): void {
  const certs = program.command('certs').description('certificate helpers');
  certs
    .command('self-signed')
    .description('write a self-signed TEST server certificate and key (not for production)')
    .requiredOption('--host <name...>', 'host names / IP addresses devices connect to (repeatable)')
    .option('--days <n>', 'validity in days', '365')
    .option('--cert <file>', 'where to write the certificate PEM', 'gateway-cert.pem')
    .option('--key <file>', 'where to write the private key PEM (mode 0600)', 'gateway-key.pem')
    .option('--json', 'print what was written as JSON')
    .action(async (flags: { host: string[]; days: string; cert: string; key: string; json?: boolean }) => {
      const cert = await createSelfSignedCertificate({ hosts: flags.host, days: Number(flags.days) });
      await writeFile(flags.cert, cert.certificatePem, { mode: 0o644 });
      await writeFile(flags.key, cert.privateKeyPem, { mode: 0o600 });
      if (flags.json === true) {
        const written = { cert: flags.cert, key: flags.key, hosts: flags.host, notAfter: cert.notAfter, sha256: cert.fingerprint256 };
        process.stdout.write(`${JSON.stringify(written, null, 2)}\n`);
        return;
      }
      process.stdout.write(`wrote ${flags.cert} and ${flags.key} (self-signed test certificate, valid until ${cert.notAfter}, sha256 ${cert.fingerprint256})\n`);
    });
}
