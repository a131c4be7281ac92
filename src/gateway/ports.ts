/**
 * What the data plane reads and reports: the registry's data-plane port, narrowed to what gateways
 * use. `main.ts` passes the registry; the data plane never sees storage. Hot paths go through caches.
 */
import type { RegistryForDataPlane } from '../registry/ports.ts';
import type { DeviceCertificateInfo } from '../registry/types.ts';

export type GatewayDirectory = Pick<RegistryForDataPlane,
  | 'events'
  | 'listGatewayRuntimeConfigs'
  | 'getGatewayRuntimeConfig'
  | 'getFunction'
  | 'findDeviceCredential'
  | 'findDevice'
  | 'verifyPassword'
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
}
