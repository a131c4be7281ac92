/** Device records as the registry writes them: a blank one, and one from a checked one-party row. */
import type { CheckedDeviceRow } from './device-rules.ts';
import type { DeviceRecord } from './ports.ts';

export function blankDeviceRecord(productKey: string, deviceName: string, at: string): DeviceRecord {
  return {
    productKey, deviceName, username: null, passwordHash: null, sn: null, origin: 'IMPORTED',
    connectionState: 'INACTIVE', disabled: false, lastOnlineAt: null, clientAddress: null, certificate: null,
    createdAt: at, updatedAt: at,
  };
}

export function rowDeviceRecord(productKey: string, row: CheckedDeviceRow, passwordHash: string, at: string): DeviceRecord {
  return { ...blankDeviceRecord(productKey, row.deviceName, at), username: row.username, passwordHash, sn: row.sn };
}
