/**
 * The query of a device list page (issue 14, fleets of 100,000): limit, an opaque cursor, a search prefix
 * and a status, checked into what storage pages by. The cursor is the last device name of the previous
 * page: keyset paging, stable while devices are added or removed (never an offset, which shifts under
 * inserts and reads every skipped row).
 */
import { GatehouseError } from '../core/errors.ts';
import { DEVICE_NAME } from './device-rules.ts';
import type { DevicePageQuery, DeviceStatusFilter } from './ports.ts';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;
/** As long as the longest SN, the longest of the three searched fields. */
export const MAX_SEARCH_LENGTH = 64;
export const DEVICE_STATUSES = ['online', 'offline', 'inactive', 'disabled'] as const;

export interface DeviceListInput {
  limit?: number;
  cursor?: string;
  search?: string;
  status?: string;
  /** Refused: an old caller that pages by offset would otherwise get the first page forever. */
  offset?: unknown;
}

const CURSOR_PREFIX = 'n:';

export function encodeCursor(lastDeviceName: string): string {
  return Buffer.from(CURSOR_PREFIX + lastDeviceName, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const text = /^[A-Za-z0-9_-]{1,100}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const name = text.startsWith(CURSOR_PREFIX) ? text.slice(CURSOR_PREFIX.length) : '';
  if (!DEVICE_NAME.test(name)) throw new GatehouseError('GW_ERR_CURSOR_INVALID', undefined, 'cursor');
  return name;
}

/** The checked page query; each refusal names its field. */
export function checkDeviceListInput(input: DeviceListInput): DevicePageQuery {
  if (input.offset !== undefined) throw new GatehouseError('GW_ERR_PAGE_OFFSET_UNSUPPORTED', undefined, 'offset');
  const limit = input.limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new GatehouseError('GW_ERR_PAGE_LIMIT_INVALID', `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}`, 'limit');
  }
  const query: DevicePageQuery = { limit };
  if (input.cursor !== undefined && input.cursor !== '') query.after = decodeCursor(input.cursor);
  if (input.search !== undefined && input.search !== '') {
    // eslint-disable-next-line no-control-regex -- control characters are what is refused
    if (input.search.length > MAX_SEARCH_LENGTH || /[\u0000-\u001f\u007f]/.test(input.search)) {
      throw new GatehouseError('GW_ERR_DEVICE_SEARCH_INVALID', undefined, 'search');
    }
    query.search = input.search;
  }
  if (input.status !== undefined && input.status !== '') {
    const status = input.status.toLowerCase();
    if (!(DEVICE_STATUSES as readonly string[]).includes(status)) throw new GatehouseError('GW_ERR_DEVICE_STATUS_INVALID', undefined, 'status');
    query.status = status.toUpperCase() as DeviceStatusFilter;
  }
  return query;
}
