/**
 * What the data plane reads and reports: the registry's data-plane port, narrowed to what gateways
 * use. `main.ts` passes the registry; the data plane never sees storage. Hot paths go through caches.
 */
import type { RegistryForDataPlane } from '../registry/ports.ts';
import type { AclRule } from '../registry/access-control.ts';
import type { DeviceCertificateInfo } from '../registry/types.ts';
import type { SessionAcl } from './acl/index.ts';
import type { ConnectionEventInput } from '../registry/connection-events.ts';

/** Where a gateway reports CONNECT outcomes and disconnects: must return at once (batched, folded, stored elsewhere). */
export interface ConnectionEventSink {
  record(event: ConnectionEventInput): void;
}

export type GatewayDirectory = Pick<RegistryForDataPlane,
  | 'events'
  | 'listGatewayRuntimeConfigs'
  | 'getGatewayRuntimeConfig'
  | 'getFunction'
  | 'findDeviceCredential'
  | 'findDevice'
  | 'verifyPassword'
  | 'upgradePasswordHash'
  | 'recordDeviceConnected'
  | 'recordDeviceDisconnected'
  | 'markGatewayDevicesOffline'
  | 'setGatewayStatus'>;

/** Who a connection is, once authenticated: attached to the engine's session as its identity. */
export interface DeviceIdentity {
  readonly gatewayId: string;
  readonly productKey: string;
  readonly deviceName: string;
  /** The verified device certificate, with X.509 on. */
  readonly certificate?: DeviceCertificateInfo;
  /** Topic access control of this connection (set before CONNACK; recompiled when the gateway's rules change). */
  access?: SessionAccess;
}

/**
 * A device came online or went offline on a gateway, as its engine saw it: told synchronously, in the engine's
 * order. `recorded` settles once the registry has it: false when it did not record it (a disconnection of a device
 * online on another node since, or deleted meanwhile), so nothing should announce it. Never rejects.
 */
export interface DevicePresence {
  readonly type: 'online' | 'offline';
  readonly identity: DeviceIdentity;
  readonly at: Date;
  /** The client's address, for `online`. */
  readonly clientAddress: string | null;
  readonly recorded: Promise<boolean>;
}

/** A connection's access rules: the inputs kept so an edit of the gateway can recompile them live. */
export interface SessionAccess {
  acl: SessionAcl;
  /** The gateway's rules version `acl` was compiled under. */
  version: number;
  /** Rules a third-party answer carried for this device, read before the gateway's. */
  readonly deviceRules: readonly AclRule[];
  readonly username: string | undefined;
  readonly clientId: string;
}
