/**
 * What the data plane reads and reports, as narrow ports. `main.ts` backs them with the registry;
 * the data plane never sees storage. Hot paths go through caches in front of these.
 */
import type { DeviceConnectionInfo, DeviceCredential, GatewayRuntimeConfig, GatewayStatus } from '../registry/types.ts';

export interface GatewayDirectory {
  getGatewayRuntimeConfig(gatewayId: string): Promise<GatewayRuntimeConfig | null>;
  /** Gateways the operator wants running (started at boot). */
  listEnabledGatewayIds(): Promise<string[]>;
  findDeviceCredential(productKey: string, username: string): Promise<DeviceCredential | null>;
  /** Constant-time check of a password against a stored salted hash. */
  verifyPassword(passwordHash: string, password: string): Promise<boolean>;
  recordDeviceConnected(productKey: string, deviceName: string, info: DeviceConnectionInfo): Promise<void>;
  recordDeviceDisconnected(productKey: string, deviceName: string, at: Date): Promise<void>;
  setGatewayStatus(gatewayId: string, status: GatewayStatus, reason: string | null): Promise<void>;
}

/** Who a connection is, once authenticated: attached to the engine's session as its identity. */
export interface DeviceIdentity {
  readonly gatewayId: string;
  readonly productKey: string;
  readonly deviceName: string;
}
