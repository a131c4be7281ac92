/**
 * The test PKI: every certificate the TLS, X.509 and OCSP tests need, generated at test time with the
 * `openssl` CLI into a temporary directory.
 *
 * ```
 * root CA ──> intermediate CA (pathlen 0) ──> server, serverRotated, serverExpired, serverNotYetValid
 *                                        ├──> devices good / revoked (keyCompromise) / expired
 *                                        └──> ocspSigner (EKU OCSPSigning, delegated responder)
 * rogue CA ──> devices.wrongCa, rogueOcspSigner          devices.selfSigned (its own issuer)
 * ```
 *
 * Both real CAs (and the rogue one) are `openssl ca` databases (`index.txt`), so `revoke()` is a real
 * `openssl ca -revoke`, and the OCSP responder (`ocsp-responder.ts`), which reads the database on every
 * request, reports it at once.
 *
 * The responder URL is baked into every leaf's AIA extension, so the responder's port must exist before
 * the certificates do. Two ways to get that:
 *
 * - Shared, cached per process (most tests): `const pki = await getPki()`. It starts a responder on an
 *   ephemeral port, issues the PKI against `pki.responder.url`, and keeps both for the life of the
 *   process (the responder does not keep the process alive; files go when the process exits). Tests
 *   that change the responder's mode call `pki.responder.reset()` afterwards; tests that revoke
 *   something revoke a device they issued themselves (`issueDevice`), not a shared fixture.
 * - Fresh and private: start the responder first, then issue, then attach.
 *   ```ts
 *   const responder = await startOcspResponder();
 *   const pki = await createPki({ ocspUrl: responder.url });
 *   responder.serve(pki.ocsp);
 *   // … finally: await responder.close(); await pki.dispose();
 *   ```
 *
 * All keys are ECDSA P-256 (PKCS#8 PEM, unencrypted). Validity is relative to the moment of generation.
 */
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { OcspAuthority, OcspResponder } from './ocsp-responder.ts';
import { startOcspResponder } from './ocsp-responder.ts';
import { onProcessExit, openssl } from './pki-openssl.ts';

/** Which CA signed a certificate. */
export type Issuer = 'root' | 'intermediate' | 'rogue' | 'self';

/** A certificate and its private key, as PEM strings and as files. */
export interface IssuedCert {
  /** Subject common name. */
  cn: string;
  /**
   * Serial as Node prints it (`X509Certificate.serialNumber`: uppercase hex). The fixtures' serials are
   * the same on every run (intermediate: server 1000 … ocspSigner 1007; rogue: 7001, 7002); the
   * self-signed device's is random.
   */
  serial: string;
  issuer: Issuer;
  certPem: string;
  certPath: string;
  keyPem: string;
  keyPath: string;
  /**
   * What a TLS peer should present: the leaf, then the intermediate when the intermediate signed it
   * (the root is never included). For rogue-signed and self-signed certificates it is the leaf alone.
   */
  chainPem: string;
  chainPath: string;
}

/** A CA: its certificate and key, and the `openssl ca` database behind it. */
export interface CertificateAuthority extends IssuedCert {
  /** The `openssl ca` section name in `pki.configPath`. */
  section: 'root_ca' | 'intermediate_ca' | 'rogue_ca';
  /** `index.txt` of `openssl ca`: one line per issued certificate, `V` valid or `R` revoked. */
  indexPath: string;
}

/** The device certificates every x509 test needs (a type alias, so `Object.values` keeps the type). */
export type DeviceFixtures = {
  /** CN `device-001`, valid, signed by the intermediate: OCSP `good`. */
  good: IssuedCert;
  /** CN `device-002`, signed by the intermediate and revoked (keyCompromise): OCSP `revoked`. */
  revoked: IssuedCert;
  /**
   * CN `device-003`, signed by the intermediate, validity 30 days ago … 1 day ago. OCSP still answers
   * `good`: the database marks expired entries only on `openssl ca -updatedb`, which is never run.
   */
  expired: IssuedCert;
  /**
   * CN `device-001` (the same name as `good`: an impostor), signed by the rogue CA. The responder
   * answers `unknown` for it (not its CA).
   */
  wrongCa: IssuedCert;
  /** CN `device-001` again, self-signed (`DEPTH_ZERO_SELF_SIGNED_CERT` in Node). */
  selfSigned: IssuedCert;
};

export type DeviceFixture = keyof DeviceFixtures;
export type ServerFixture = 'server' | 'serverRotated' | 'serverExpired' | 'serverNotYetValid';

/** Everything `createPki` produced. Paths are absolute. */
export interface Pki {
  /** The directory holding every file. */
  dir: string;
  /** The OCSP URL written into every leaf's AIA extension. */
  ocspUrl: string;
  /** The `openssl` config holding the three CA sections. */
  configPath: string;
  /** Self-signed root: the trust anchor for servers and devices alike. */
  root: CertificateAuthority;
  /** Signed by the root, `pathlen:0`; signs every good leaf. */
  intermediate: CertificateAuthority;
  /** An unrelated self-signed CA: signs `devices.wrongCa` and `rogueOcspSigner`. */
  rogue: CertificateAuthority;
  /**
   * Intermediate + root PEM: what a gateway's `deviceRootCertificates` holds so that a device
   * sending only its leaf still verifies (Node has no partial-chain flag, so the root is required).
   */
  caBundlePem: string;
  caBundlePath: string;
  /** `localhost` + IP `127.0.0.1`, EKU serverAuth, AIA OCSP. Use `chainPem` as the TLS `cert`. */
  server: IssuedCert;
  /** Same names, another key and serial: for certificate-rotation (hot reload) tests. */
  serverRotated: IssuedCert;
  /** Same names, validity 30 days ago … 1 day ago. */
  serverExpired: IssuedCert;
  /** Same names, validity from 30 days ahead. */
  serverNotYetValid: IssuedCert;
  /** A P-256 key that matches none of the certificates ("private key must match the leaf" tests). */
  wrongServerKey: { keyPem: string; keyPath: string };
  devices: DeviceFixtures;
  /** Delegated responder signed by the intermediate: EKU OCSPSigning, id-pkix-ocsp-nocheck. */
  ocspSigner: IssuedCert;
  /** The same kind of certificate signed by the rogue CA: the responder's `wrong-signer` mode. */
  rogueOcspSigner: IssuedCert;
  /** What an OCSP responder needs to answer for the intermediate (`OcspResponder.serve`). */
  ocsp: OcspAuthority;
  /** Removes the directory (when `createPki` created it) and forgets the PKI. */
  dispose(): Promise<void>;
}

/** A `Pki` whose responder is already listening at `ocspUrl`. */
export interface SharedPki extends Pki {
  /** Serves `pki.ocsp` at `pki.ocspUrl`. Put it back with `reset()` after changing its mode. */
  responder: OcspResponder;
}

export interface CreatePkiOptions {
  /** OCSP URL for the AIA extension of every leaf, e.g. `OcspResponder.url`. */
  ocspUrl: string;
  /**
   * Directory to generate into (created if missing; should be empty). It is the caller's to remove.
   * Default: a fresh temporary directory that `dispose()` (or process exit) removes.
   */
  dir?: string;
}

export interface IssueDeviceOptions {
  /** Default `intermediate`; `rogue` gives another wrong-CA certificate. */
  issuer?: 'intermediate' | 'rogue';
  /** notBefore; default now. */
  startDate?: Date;
  /** notAfter; default `startDate` + `days`. */
  endDate?: Date;
  /** Validity in days when `endDate` is not given. Default 365. */
  days?: number;
  /** AIA OCSP URL; default `pki.ocspUrl`; `null` leaves the AIA extension out. */
  ocspUrl?: string | null;
}

export type RevocationReason =
  | 'unspecified' | 'keyCompromise' | 'CACompromise' | 'affiliationChanged' | 'superseded'
  | 'cessationOfOperation' | 'certificateHold' | 'removeFromCRL';

type Profile = 'root' | 'intermediate' | 'server' | 'device' | 'ocsp-signer';

interface PkiState {
  /** One queue per CA database: `openssl ca` must not run twice at once on the same files. */
  locks: Map<CertificateAuthority['section'], Promise<unknown>>;
  counter: number;
  ownsDir: boolean;
  unregisterExit: () => void;
}

const state = new WeakMap<Pki, PkiState>();
const DAY_MS = 86_400_000;
const CA_SECTIONS = { root: 'root_ca', intermediate: 'intermediate_ca', rogue: 'rogue_ca' } as const;
const FIRST_SERIAL = { root: '01', intermediate: '1000', rogue: '7000' } as const;

let shared: Promise<SharedPki> | undefined;

/**
 * The process-wide PKI with its OCSP responder, generated on the first call; later calls return the
 * same object. Neither keeps the process alive, and both are cleaned up when it exits.
 */
export function getPki(): Promise<SharedPki> {
  shared ??= (async () => {
    const responder = await startOcspResponder({ unref: true });
    try {
      const pki = await createPki({ ocspUrl: responder.url });
      responder.serve(pki.ocsp);
      return Object.assign(pki, { responder });
    } catch (error) {
      await responder.close();
      throw error;
    }
  })();
  shared.catch(() => { shared = undefined; });
  return shared;
}

/** Generates a complete, independent PKI (a few hundred ms). */
export async function createPki(options: CreatePkiOptions): Promise<Pki> {
  const ocspUrl = checkOcspUrl(options.ocspUrl);
  const ownsDir = options.dir === undefined;
  const dir = path.resolve(options.dir ?? await mkdtemp(path.join(os.tmpdir(), 'gatehouse-pki-')));
  const unregisterExit = ownsDir ? onProcessExit(() => rmSync(dir, { recursive: true, force: true })) : () => {};
  try {
    return await generate(dir, ocspUrl, ownsDir, unregisterExit);
  } catch (error) {
    unregisterExit();
    if (ownsDir) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function generate(dir: string, ocspUrl: string, ownsDir: boolean, unregisterExit: () => void): Promise<Pki> {
  await mkdir(path.join(dir, 'leaves'), { recursive: true });
  const configPath = path.join(dir, 'openssl.cnf');
  await writeFile(configPath, opensslConfig());
  const partial = { dir, ocspUrl, configPath } as Pki;
  state.set(partial, { locks: new Map(), counter: 0, ownsDir, unregisterExit });

  const [root, rogue] = await Promise.all([
    makeCa(partial, 'root', 'Gatehouse Test Root CA'),
    makeCa(partial, 'rogue', 'Rogue Root CA'),
  ]);
  partial.root = root;
  partial.rogue = rogue;
  partial.intermediate = await makeCa(partial, 'intermediate', 'Gatehouse Test Intermediate CA');

  const now = Date.now();
  const past = { startDate: new Date(now - 30 * DAY_MS), endDate: new Date(now - DAY_MS) };
  const future = { startDate: new Date(now + 30 * DAY_MS), endDate: new Date(now + 60 * DAY_MS) };
  const [server, serverRotated, serverExpired, serverNotYetValid, good, revoked, expired, wrongCa,
    selfSigned, ocspSigner, rogueOcspSigner, wrongServerKey] = await Promise.all([
    issue(partial, 'server', 'server', 'localhost', 'intermediate', {}),
    issue(partial, 'server-rotated', 'server', 'localhost', 'intermediate', {}),
    issue(partial, 'server-expired', 'server', 'localhost', 'intermediate', past),
    issue(partial, 'server-not-yet-valid', 'server', 'localhost', 'intermediate', future),
    issue(partial, 'device-good', 'device', 'device-001', 'intermediate', {}),
    issue(partial, 'device-revoked', 'device', 'device-002', 'intermediate', {}),
    issue(partial, 'device-expired', 'device', 'device-003', 'intermediate', past),
    issue(partial, 'device-wrong-ca', 'device', 'device-001', 'rogue', {}),
    selfSign(partial, 'device-self-signed', 'device-001'),
    issue(partial, 'ocsp-signer', 'ocsp-signer', 'Gatehouse Test OCSP Responder', 'intermediate', {}),
    issue(partial, 'rogue-ocsp-signer', 'ocsp-signer', 'Gatehouse Test OCSP Responder', 'rogue', {}),
    newKey(path.join(dir, 'leaves', 'wrong-server.key')),
  ]);

  const caBundlePem = partial.intermediate.certPem + root.certPem;
  const caBundlePath = path.join(dir, 'ca-bundle.pem');
  await writeFile(caBundlePath, caBundlePem);

  const pki: Pki = Object.assign(partial, {
    caBundlePem,
    caBundlePath,
    server,
    serverRotated,
    serverExpired,
    serverNotYetValid,
    wrongServerKey,
    devices: { good, revoked, expired, wrongCa, selfSigned },
    ocspSigner,
    rogueOcspSigner,
    ocsp: {
      indexPath: partial.intermediate.indexPath,
      issuerCertPath: partial.intermediate.certPath,
      signerCertPath: ocspSigner.certPath,
      signerKeyPath: ocspSigner.keyPath,
      wrongSignerCertPath: rogueOcspSigner.certPath,
      wrongSignerKeyPath: rogueOcspSigner.keyPath,
    },
    dispose: () => disposePki(pki),
  });
  await revoke(pki, 'revoked', 'keyCompromise');
  return pki;
}

async function disposePki(pki: Pki): Promise<void> {
  const s = state.get(pki);
  if (!s) return;
  state.delete(pki);
  s.unregisterExit();
  if (s.ownsDir) await rm(pki.dir, { recursive: true, force: true });
}

/**
 * Revokes a certificate in its CA's `index.txt` with `openssl ca -revoke`; the OCSP responder reports
 * it from its next request. `target` is a fixture name, an issued certificate, or a certificate PEM
 * signed by one of this PKI's CAs. Revoking twice is an error.
 *
 * On the shared PKI (`getPki()`) this is visible to every later test in the process, so revoke
 * certificates the test issued itself (`issueDevice`), not the shared fixtures.
 */
export async function revoke(pki: Pki, target: DeviceFixture | ServerFixture | IssuedCert, reason?: RevocationReason): Promise<void>;
export async function revoke(pki: Pki, certPem: string, reason?: RevocationReason): Promise<void>;
export async function revoke(pki: Pki, target: IssuedCert | string, reason: RevocationReason = 'keyCompromise'): Promise<void> {
  const s = stateOf(pki);
  let certPath: string;
  let issuer: Issuer;
  if (typeof target === 'object') {
    ({ certPath, issuer } = target);
  } else if (isFixtureName(target)) {
    const cert = target in pki.devices ? pki.devices[target as DeviceFixture] : pki[target as ServerFixture];
    ({ certPath, issuer } = cert);
  } else {
    issuer = issuerOf(pki, target);
    certPath = path.join(pki.dir, 'leaves', `revoke-${++s.counter}.crt`);
    await writeFile(certPath, target);
  }
  if (issuer === 'self') throw new Error('a self-signed certificate has no CA database to revoke it in');
  const section = CA_SECTIONS[issuer];
  await withLock(pki, section, () =>
    openssl(['ca', '-batch', '-config', pki.configPath, '-name', section, '-revoke', certPath, '-crl_reason', reason],
      { cwd: pki.dir }));
}

/** Issues a new device certificate (fresh P-256 key) for `cn`, signed by the intermediate by default. */
export async function issueDevice(pki: Pki, cn: string, options: IssueDeviceOptions = {}): Promise<IssuedCert> {
  const s = stateOf(pki);
  const startDate = options.startDate ?? new Date();
  const endDate = options.endDate ?? new Date(startDate.getTime() + (options.days ?? 365) * DAY_MS);
  const ocspUrl = options.ocspUrl === null ? null : checkOcspUrl(options.ocspUrl ?? pki.ocspUrl);
  const name = `device-${++s.counter}-${cn.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}`;
  const dated = options.startDate !== undefined || options.endDate !== undefined || options.days !== undefined;
  return issue(pki, name, 'device', cn, options.issuer ?? 'intermediate', dated ? { startDate, endDate } : {}, ocspUrl);
}

function stateOf(pki: Pki): PkiState {
  const s = state.get(pki);
  if (!s) throw new Error('this PKI was disposed (or not made by createPki)');
  return s;
}

function isFixtureName(value: string): value is DeviceFixture | ServerFixture {
  return ['good', 'revoked', 'expired', 'wrongCa', 'selfSigned', 'server', 'serverRotated', 'serverExpired',
    'serverNotYetValid'].includes(value);
}

function issuerOf(pki: Pki, certPem: string): Issuer {
  const cert = new X509Certificate(certPem);
  for (const issuer of ['intermediate', 'root', 'rogue'] as const) {
    const ca = new X509Certificate(pki[issuer].certPem);
    if (cert.checkIssued(ca) && cert.verify(ca.publicKey)) return issuer;
  }
  throw new Error(`certificate ${cert.serialNumber} (${cert.subject}) was not signed by a CA of this PKI`);
}

// `openssl ca` rewrites index.txt and serial, so calls on one database must not overlap.
function withLock<T>(pki: Pki, section: CertificateAuthority['section'], fn: () => Promise<T>): Promise<T> {
  const { locks } = stateOf(pki);
  const run = (locks.get(section) ?? Promise.resolve()).then(fn);
  locks.set(section, run.catch(() => undefined));
  return run;
}

async function makeCa(pki: Pki, which: 'root' | 'intermediate' | 'rogue', cn: string): Promise<CertificateAuthority> {
  const section = CA_SECTIONS[which];
  const caDir = path.join(pki.dir, which);
  await mkdir(path.join(caDir, 'newcerts'), { recursive: true });
  await Promise.all([
    writeFile(path.join(caDir, 'index.txt'), ''),
    writeFile(path.join(caDir, 'index.txt.attr'), 'unique_subject = no\n'),
    writeFile(path.join(caDir, 'serial'), `${FIRST_SERIAL[which]}\n`),
  ]);
  const keyPath = path.join(caDir, 'key.pem');
  const certPath = path.join(caDir, 'cert.pem');
  const csrPath = path.join(caDir, 'ca.csr');
  const extPath = await writeExtensions(pki, which, which === 'intermediate' ? 'intermediate' : 'root', null);
  await newKeyAndCsr(pki, keyPath, csrPath, `/O=Gatehouse Test/CN=${escapeRdn(cn)}`);
  // The root and the rogue CA sign themselves into their own database; the intermediate goes into the root's.
  const signer = which === 'intermediate' ? 'root_ca' : section;
  await withLock(pki, signer, () => openssl(['ca', '-batch', '-notext', '-config', pki.configPath, '-name', signer,
    ...(which === 'intermediate' ? [] : ['-selfsign', '-keyfile', keyPath]),
    '-days', '3650', '-extfile', extPath, '-extensions', 'ext', '-in', csrPath, '-out', certPath], { cwd: pki.dir }));
  const [certPem, keyPem] = await Promise.all([readPem(certPath), readFile(keyPath, 'utf8')]);
  return {
    cn, serial: new X509Certificate(certPem).serialNumber, issuer: which === 'intermediate' ? 'root' : 'self',
    certPem, certPath, keyPem, keyPath, chainPem: certPem, chainPath: certPath,
    section, indexPath: path.join(caDir, 'index.txt'),
  };
}

async function issue(
  pki: Pki,
  name: string,
  profile: Profile,
  cn: string,
  issuer: 'intermediate' | 'rogue',
  validity: { startDate?: Date; endDate?: Date },
  ocspUrl: string | null = pki.ocspUrl,
): Promise<IssuedCert> {
  const base = path.join(pki.dir, 'leaves', name);
  const keyPath = `${base}.key`;
  const csrPath = `${base}.csr`;
  const certPath = `${base}.crt`;
  const chainPath = `${base}.chain.pem`;
  const prepared = Promise.all([
    writeExtensions(pki, name, profile, ocspUrl),
    newKeyAndCsr(pki, keyPath, csrPath, `/CN=${escapeRdn(cn)}`),
  ]);
  prepared.catch(() => {}); // awaited below; this only keeps an early failure from counting as unhandled
  const dates = validity.startDate && validity.endDate
    ? ['-startdate', asn1Time(validity.startDate), '-enddate', asn1Time(validity.endDate)]
    : ['-days', '365'];
  const section = CA_SECTIONS[issuer];
  // Queue for signing now, before the key exists: keys are made in parallel, but serials follow call
  // order, so the fixtures get the same serials on every run.
  await withLock(pki, section, async () => {
    const [extPath] = await prepared;
    await openssl(['ca', '-batch', '-notext', '-config', pki.configPath, '-name', section,
      ...dates, '-extfile', extPath, '-extensions', 'ext', '-in', csrPath, '-out', certPath], { cwd: pki.dir });
  });
  const certPem = await readPem(certPath);
  const chainPem = issuer === 'intermediate' ? certPem + pki.intermediate.certPem : certPem;
  await writeFile(chainPath, chainPem);
  return {
    cn, serial: new X509Certificate(certPem).serialNumber, issuer,
    certPem, certPath, keyPem: await readFile(keyPath, 'utf8'), keyPath, chainPem, chainPath,
  };
}

async function selfSign(pki: Pki, name: string, cn: string): Promise<IssuedCert> {
  const base = path.join(pki.dir, 'leaves', name);
  const keyPath = `${base}.key`;
  const certPath = `${base}.crt`;
  const extPath = await writeExtensions(pki, name, 'device', pki.ocspUrl);
  await openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-utf8',
    '-config', extPath, '-extensions', 'ext', '-days', '365', '-sha256', '-subj', `/CN=${escapeRdn(cn)}`,
    '-keyout', keyPath, '-out', certPath], { cwd: pki.dir });
  const certPem = await readPem(certPath);
  return {
    cn, serial: new X509Certificate(certPem).serialNumber, issuer: 'self',
    certPem, certPath, keyPem: await readFile(keyPath, 'utf8'), keyPath, chainPem: certPem, chainPath: certPath,
  };
}

async function newKeyAndCsr(pki: Pki, keyPath: string, csrPath: string, subject: string): Promise<void> {
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-utf8',
    '-config', pki.configPath, '-subj', subject, '-keyout', keyPath, '-out', csrPath], { cwd: pki.dir });
}

async function newKey(keyPath: string): Promise<{ keyPem: string; keyPath: string }> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
  return { keyPem: await readFile(keyPath, 'utf8'), keyPath };
}

// Chains are built by concatenation, so every PEM must end with a newline.
async function readPem(file: string): Promise<string> {
  const text = await readFile(file, 'utf8');
  return text.endsWith('\n') ? text : `${text}\n`;
}

// One extensions file per certificate, so per-certificate values never go through a shared config.
async function writeExtensions(pki: Pki, name: string, profile: Profile, ocspUrl: string | null): Promise<string> {
  const lines = ['[ req ]', 'distinguished_name = req_dn', 'string_mask = utf8only', '[ req_dn ]', '[ ext ]',
    'subjectKeyIdentifier = hash'];
  const aia = ocspUrl === null ? [] : [`authorityInfoAccess = OCSP;URI:${ocspUrl}`];
  switch (profile) {
    case 'root':
      lines.push('basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign');
      break;
    case 'intermediate':
      lines.push('authorityKeyIdentifier = keyid:always', 'basicConstraints = critical, CA:TRUE, pathlen:0',
        'keyUsage = critical, keyCertSign, cRLSign, digitalSignature');
      break;
    case 'server':
      lines.push('authorityKeyIdentifier = keyid:always', 'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth',
        'subjectAltName = DNS:localhost, IP:127.0.0.1', ...aia);
      break;
    case 'device':
      lines.push('authorityKeyIdentifier = keyid:always', 'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth', ...aia);
      break;
    case 'ocsp-signer':
      // id-pkix-ocsp-nocheck: clients need not check the responder's own revocation status (RFC 6960 §4.2.2.2.1).
      lines.push('authorityKeyIdentifier = keyid:always', 'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature', 'extendedKeyUsage = OCSPSigning', 'noCheck = ignored');
      break;
  }
  const file = path.join(pki.dir, 'leaves', `${name}.ext.cnf`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

// Paths are relative (openssl runs with cwd = the PKI directory), so no caller-chosen path reaches the config.
function opensslConfig(): string {
  const ca = (section: string, dir: string): string => `
[ ${section} ]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/cert.pem
private_key = $dir/key.pem
serial = $dir/serial
default_md = sha256
default_days = 365
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
preserve = yes
`;
  return `# Generated by test/harness/pki.ts
[ req ]
distinguished_name = req_dn
string_mask = utf8only
[ req_dn ]
[ policy_any ]
organizationName = optional
commonName = supplied
${ca('root_ca', 'root')}${ca('intermediate_ca', 'intermediate')}${ca('rogue_ca', 'rogue')}`;
}

// The URL goes into an openssl config value, where `,` `$` or a newline would change its meaning.
function checkOcspUrl(url: string): string {
  const parsed = new URL(url);
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !/^[A-Za-z0-9:/.\-_[\]%?=&~]+$/.test(url)) {
    throw new Error(`unsupported OCSP URL for the test PKI: ${url}`);
  }
  return url;
}

// In `-subj /CN=…`, `/` starts an RDN, `+` a multi-valued one and `=` a value.
function escapeRdn(value: string): string {
  return value.replace(/[\\/=+]/g, (c) => `\\${c}`);
}

// YYYYMMDDHHMMSSZ, for `openssl ca -startdate/-enddate`.
function asn1Time(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-T:]/g, '')}Z`;
}
