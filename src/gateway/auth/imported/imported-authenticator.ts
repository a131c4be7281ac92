/**
 * One-party verification: the username and password a device sends are checked against the rows
 * imported into the gateway's product. No database query per CONNECT on the hot path: credentials
 * are cached per username, and a password that verified against a hash is remembered as a keyed
 * digest so a reconnecting device does not pay the slow hash again.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { RC } from '../../../mqtt/reason-codes.ts';
import type { DeviceCredential } from '../../../registry/types.ts';
import type { Logger } from '../../../core/logger.ts';
import type { Authenticator, Credential, Decision } from '../authenticator.ts';

export interface CredentialSource {
  findDeviceCredential(productKey: string, username: string): Promise<DeviceCredential | undefined>;
  /** Constant time; with no hash it checks a dummy one, so an unknown user costs what a wrong password does. */
  verifyPassword(passwordHash: string | undefined, password: string | Buffer): Promise<boolean>;
  /** After a login: the password hashed again at the current cost if `verifiedHash` has another (undefined if not). */
  upgradePasswordHash(productKey: string, deviceName: string, verifiedHash: string, password: string | Buffer): Promise<string | undefined>;
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
  logger?: Logger;
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
  /** A hash upgrade is running: one at a time, so a reconnect storm of old hashes pays at most one extra hash at once. */
  #upgrading = false;
  /** Counts invalidations: a lookup that an invalidation overtook does not cache what it read before it. */
  #invalidations = 0;

  constructor(productKey: string, source: CredentialSource, options: Partial<ImportedAuthOptions> = {}) {
    this.#productKey = productKey;
    this.#source = source;
    this.#options = { ...DEFAULTS, ...options };
  }

  /** Drops what is cached for a username (device edited, disabled or deleted). */
  invalidate(username: string | null): void {
    this.#invalidations++;
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
    const digest = this.#digest(row.passwordHash, credential.password);
    const remembered = entry.verified !== undefined && timingSafeEqual(entry.verified, digest);
    const ok = remembered || await this.#source.verifyPassword(row.passwordHash, credential.password);
    if (!ok) return { kind: 'deny', reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: 'wrong_password' };
    if (!remembered) entry.verified = digest;
    if (row.disabled) return { kind: 'deny', reasonCode: RC.NOT_AUTHORIZED, reason: 'device_disabled' };
    if (!remembered) this.#upgrade(username, entry, row, credential.password);
    return { kind: 'allow', deviceName: row.deviceName };
  }

  /**
   * The password just verified against a stored hash: if that hash was made at an older cost, store one
   * at the current cost, in the background (the CONNACK does not wait) and one at a time; a login that
   * finds an upgrade running leaves its own for a later login.
   */
  #upgrade(username: string, entry: Cached, row: DeviceCredential, password: Buffer): void {
    if (this.#upgrading) return;
    this.#upgrading = true;
    this.#source.upgradePasswordHash(this.#productKey, row.deviceName, row.passwordHash, password).then(
      (next) => {
        if (next === undefined) return;
        this.#options.logger?.info({ productKey: this.#productKey, deviceName: row.deviceName }, 'password_hash_upgraded');
        // Reconnects keep skipping the slow hash: remember the new hash and the digest that goes with it.
        if (this.#cache.get(username) === entry && entry.credential === row) {
          entry.credential = { ...row, passwordHash: next };
          entry.verified = this.#digest(next, password);
        }
      },
      (err: unknown) => this.#options.logger?.warn({ err, productKey: this.#productKey, deviceName: row.deviceName }, 'password_hash_upgrade_failed'),
    ).finally(() => {
      this.#upgrading = false;
    });
  }

  #digest(passwordHash: string, password: Buffer): Buffer {
    return createHmac('sha256', this.#digestKey).update(passwordHash).update('\0').update(password).digest();
  }

  async #lookup(username: string): Promise<Cached> {
    const now = Date.now();
    const hit = this.#cache.get(username);
    if (hit !== undefined && now - hit.loadedAt < this.#options.cacheTtlMs) return hit;
    const invalidations = this.#invalidations;
    const credential = await this.#source.findDeviceCredential(this.#productKey, username);
    const entry: Cached = { credential, loadedAt: now };
    // The row changed while it was being read (a device disabled, a password replaced): what was read may
    // be from before the change. It serves this attempt (the gateway checks the state again after the
    // chain) but is not kept, or every CONNECT for a minute would see the old row.
    if (invalidations !== this.#invalidations) return entry;
    // Keep what verified before if the row did not change.
    if (hit?.verified !== undefined && hit.credential?.passwordHash === credential?.passwordHash) entry.verified = hit.verified;
    this.#cache.delete(username);
    this.#cache.set(username, entry);
    if (this.#cache.size > this.#options.maxCached) this.#cache.delete(this.#cache.keys().next().value!);
    return entry;
  }
}
