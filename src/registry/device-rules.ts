/** The one-party row rules of DESIGN.md: username, password, device name and SN. */
import { GatehouseError } from '../core/errors.ts';
import type { DeviceCreateInput } from './types.ts';

export const USERNAME = /^[A-Za-z0-9\-_@.:]{4,32}$/;
export const PASSWORD = /^[A-Za-z0-9\-_@.:]{1,32}$/;
export const DEVICE_NAME = /^[A-Za-z0-9\-_@.:]{4,32}$/;
/** Up to 64 characters, no control characters. */
export const SN = /^[^\p{Cc}]{1,64}$/u;

const ROW_FIELDS = ['username', 'password', 'sn', 'deviceName'];

export interface CheckedDeviceRow {
  username: string;
  password: string;
  sn: string | null;
  deviceName: string;
}

export function checkUsername(value: unknown): string {
  if (typeof value !== 'string' || !USERNAME.test(value)) throw new GatehouseError('GW_ERR_USERNAME_INVALID', undefined, 'username');
  return value;
}

export function checkPassword(value: unknown): string {
  if (typeof value !== 'string' || !PASSWORD.test(value)) throw new GatehouseError('GW_ERR_PASSWORD_INVALID', undefined, 'password');
  return value;
}

export function checkDeviceName(value: unknown, field = 'deviceName'): string {
  if (typeof value !== 'string' || !DEVICE_NAME.test(value)) throw new GatehouseError('GW_ERR_DEVICE_NAME_INVALID', undefined, field);
  return value;
}

/** Empty means "no SN". */
export function checkSn(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || !SN.test(value)) throw new GatehouseError('GW_ERR_SN_INVALID', undefined, 'sn');
  return value;
}

/** One row as given (JSON object or CSV record mapped to names); the device name defaults to the username. */
export function checkDeviceRow(row: unknown): CheckedDeviceRow {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new GatehouseError('GW_ERR_VALIDATION', 'a row must be an object with username and password');
  }
  for (const key of Object.keys(row)) {
    if (!ROW_FIELDS.includes(key)) throw new GatehouseError('GW_ERR_VALIDATION', `unknown field "${key}"; a row has ${ROW_FIELDS.join(', ')}`, key);
  }
  const input = row as Partial<DeviceCreateInput>;
  const username = checkUsername(input.username);
  const password = checkPassword(input.password);
  const sn = checkSn(input.sn);
  const deviceName = input.deviceName === undefined || input.deviceName === '' ? username : checkDeviceName(input.deviceName);
  return { username, password, sn, deviceName };
}
