/**
 * The authentication contract (EMQX chains, Mosquitto's "defer"): each provider answers allow, deny
 * or ignore; a backend failure is never an allow and never confused with bad credentials.
 */
import type { TLSSocket } from 'node:tls';
import type { ProtocolVersion } from '../../mqtt/codec.ts';
import type { AclRule } from '../../registry/access-control.ts';
import type { DeviceCertificateInfo } from '../../registry/types.ts';

/** What a device presented. The password stays a Buffer and is never logged. */
export interface Credential {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly remoteAddress: string | undefined;
  readonly userProperties: Readonly<Record<string, string | string[]>> | undefined;
  /** The TLS socket, for peer certificate facts. */
  readonly socket: TLSSocket | undefined;
  /**
   * The verified device certificate with X.509 on (`certificateCommonName` for third-party checks,
   * `${cert.cn}`, `${cert.serial}`, `${cert.issuer}` for templates); undefined otherwise.
   */
  readonly certificate?: DeviceCertificateInfo | undefined;
}

export type Decision =
  /** `acl`: rules a third-party answer carried for this device, applied before the gateway's. */
  | { kind: 'allow'; deviceName: string; acl?: readonly AclRule[] }
  /** Refused: `reasonCode` is the v5 CONNACK code (0x86 bad credentials, 0x87 not authorized …). */
  | { kind: 'deny'; reasonCode: number; reason: string }
  /** Not this provider's call: the next one decides. */
  | { kind: 'ignore' }
  /** The backend could not answer (timeout, 5xx, script fault): CONNACK "server unavailable". */
  | { kind: 'unavailable'; reason: string };

export interface Authenticator {
  readonly id: string;
  authenticate(credential: Credential): Promise<Decision>;
}
