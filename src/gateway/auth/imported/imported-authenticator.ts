/**
 * One-party verification: the username and password a device sends are checked against the rows
 * imported into the gateway's product. No database query per CONNECT on the hot path: credentials
 * are cached per username, and a password that verified against a hash is remembered as a keyed
 * digest so a reconnecting device does not pay the slow hash again.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { RC } from '../../../mqtt/reason-codes.ts';
import type { DeviceCredential } from '../../../registry/types.ts';
import type { Authenticator, Credential, Decision } from '../authenticator.ts';

export interface CredentialSource {
  findDeviceCredential(productKey: string, username: string): Promise<DeviceCredential | undefined>;
  /** Constant time; with no hash it checks a dummy one, so an unknown user costs what a wrong password does. */
  verifyPassword(passwordHash: string | undefined, password: string | Buffer): Promise<boolean>;
}

interface Cached {
  credential: DeviceCredential | undefined;
  loadedAt: number;
  /** HMAC of the last password that verified against `credential.passwordHash`. */
  verified?: Buffer;
}

export interface ImportedAuthOptions {
  /** How long a looked-up row (or its absence) is trusted without change events. */
  cacheTtlMs: number;
  maxCached: number;
}

const DEFAULTS: ImportedAuthOptions = { cacheTtlMs: 60_000, maxCached: 100_000 };

export class ImportedAuthenticator implements Authenticator {
  readonly id = 'imported';
  readonly #productKey: string;
  readonly #source: CredentialSource;
  readonly #options: ImportedAuthOptions;
  readonly #cache = new Map<string, Cached>();
  /** Per-process key: remembered password digests are useless outside this process. */
  readonly #digestKey = randomBytes(32);

  constructor(productKey: string, source: CredentialSource, options: Partial<ImportedAuthOptions> = {}) {
    this.#productKey = productKey;
    this.#source = source;
    this.#options = { ...DEFAULTS, ...options };
  }

  /** Drops what is cached for a username (device edited, disabled or deleted). */
  invalidate(username: string | null): void {
    if (username === null) this.#cache.clear();
    else this.#cache.delete(username);
  }

  async authenticate(credential: Credential): Promise<Decision> {
    const username = credential.username;
    if (username === undefined || credential.password === undefined) {
      return { kind: 'deny', reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: 'missing_credentials' };
    }
    let entry: Cached;
    try {
      entry = await this.#lookup(username);
    } catch (err) {
      return { kind: 'unavailable', reason: `credential lookup failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    const row = entry.credential;
    if (row === undefined) {
      await this.#source.verifyPassword(undefined, credential.password); // same time as a wrong password
      return { kind: 'deny', reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: 'unknown_username' };
    }
    const digest = createHmac('sha256', this.#digestKey).update(row.passwordHash).update('\0').update(credential.password).digest();
    let ok = entry.verified !== undefined && timingSafeEqual(entry.verified, digest);
    if (!ok) {
      ok = await this.#source.verifyPassword(row.passwordHash, credential.password);
      if (ok) entry.verified = digest;
    }
    if (!ok) return { kind: 'deny', reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: 'wrong_password' };
    if (row.disabled) return { kind: 'deny', reasonCode: RC.NOT_AUTHORIZED, reason: 'device_disabled' };
    return { kind: 'allow', deviceName: row.deviceName };
  }

  async #lookup(username: string): Promise<Cached> {
    const now = Date.now();
    const hit = this.#cache.get(username);
    if (hit !== undefined && now - hit.loadedAt < this.#options.cacheTtlMs) return hit;
    const credential = await this.#source.findDeviceCredential(this.#productKey, username);
    const entry: Cached = { credential, loadedAt: now };
    // Keep what verified before if the row did not change.
    if (hit?.verified !== undefined && hit.credential?.passwordHash === credential?.passwordHash) entry.verified = hit.verified;
    this.#cache.delete(username);
    this.#cache.set(username, entry);
    if (this.#cache.size > this.#options.maxCached) this.#cache.delete(this.#cache.keys().next().value!);
    return entry;
  }
}
