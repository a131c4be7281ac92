/**
 * What the data plane reads and reports: the registry's data-plane port, narrowed to what gateways
 * use. `main.ts` passes the registry; the data plane never sees storage. Hot paths go through caches.
 */
import type { RegistryForDataPlane } from '../registry/ports.ts';

export type GatewayDirectory = Pick<RegistryForDataPlane,
  | 'events'
  | 'listGatewayRuntimeConfigs'
  | 'getGatewayRuntimeConfig'
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
}
