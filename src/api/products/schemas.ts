/** Product and device schemas (devices live under their product). */
import { Type } from 'typebox';
import { DEFAULT_PAGE_SIZE, DEVICE_STATUSES, MAX_IMPORT_OPERATION_ROWS, MAX_PAGE_SIZE, MAX_REPORTED_FAILURES, MAX_SEARCH_LENGTH } from '../../registry/index.ts';
import { Nullable } from '../common-schemas.ts';

export const ProductView = Type.Object({
  productKey: Type.String(),
  name: Type.String({ description: 'Gateway<gateway ID>' }),
  gatewayId: Type.String(),
  deviceCount: Type.Integer(),
  deviceCounts: Type.Object({
    online: Type.Integer(),
    offline: Type.Integer(),
    inactive: Type.Integer({ description: 'Never connected' }),
    disabled: Type.Integer({ description: 'Disabled, whatever their connection' }),
  }, { description: 'Devices per status, exact (counted by the database)' }),
  createdAt: Type.String(),
});

export const ProductList = Type.Object({ items: Type.Array(ProductView) });

export const ProductParams = Type.Object({ productKey: Type.String() });
export const DeviceParams = Type.Object({ productKey: Type.String(), deviceName: Type.String() });

export const DeviceView = Type.Object({
  deviceName: Type.String(),
  productKey: Type.String(),
  username: Nullable(Type.String()),
  sn: Nullable(Type.String()),
  status: Type.Enum(['INACTIVE', 'ONLINE', 'OFFLINE', 'DISABLED']),
  origin: Type.Enum(['IMPORTED', 'AUTO_CREATED']),
  lastOnlineAt: Nullable(Type.String({ description: 'Last connect' })),
  clientAddress: Nullable(Type.String()),
  certificate: Nullable(Type.Object({
    cn: Nullable(Type.String()),
    serial: Type.String(),
    issuer: Type.String(),
    fingerprint256: Type.String(),
  })),
  properties: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
}, { description: 'The password is write-only and never returned' });

export const DeviceCreateBody = Type.Object({
  username: Type.String({ description: '4-32 of A-Z a-z 0-9 - _ @ . :, unique in the product' }),
  password: Type.String({ description: '1-32 of A-Z a-z 0-9 - _ @ . :; write-only, stored as a salted hash' }),
  sn: Type.Optional(Nullable(Type.String({ description: 'Up to 64 characters' }))),
  deviceName: Type.Optional(Type.String({ description: '4-32 of A-Z a-z 0-9 - _ @ . :, unique in the product; default: the username' })),
}, { additionalProperties: false });

export const DeviceUpdateBody = Type.Object({
  password: Type.Optional(Type.String()),
  sn: Type.Optional(Nullable(Type.String())),
  disabled: Type.Optional(Type.Boolean({ description: 'A disabled device is refused at CONNECT' })),
}, { additionalProperties: false });

export const DeviceListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: `1-${MAX_PAGE_SIZE}, default ${DEFAULT_PAGE_SIZE}` })),
  cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page (opaque; stable while devices are added or removed)' })),
  search: Type.Optional(Type.String({
    description: `A prefix of the device name, username or SN (case-sensitive), up to ${MAX_SEARCH_LENGTH} characters`,
  })),
  status: Type.Optional(Type.String({ description: DEVICE_STATUSES.join(' | ') })),
  offset: Type.Optional(Type.String({ description: 'Gone: refused with GW_ERR_PAGE_OFFSET_UNSUPPORTED (use cursor)' })),
});

export const DeviceList = Type.Object({
  items: Type.Array(DeviceView, { description: 'Ordered by device name (code point order)' }),
  nextCursor: Nullable(Type.String({ description: 'Pass as cursor for the next page; null on the last page' })),
  total: Type.Integer({ description: 'Devices that match search and status (all the product\'s without them)' }),
});

/** Rows are checked one by one by the registry, so a bad row fails alone instead of the whole request. */
export const ImportJsonBody = Type.Array(Type.Unknown(), {
  description: 'Up to 10,000 rows (100,000 for an import operation), each {sn?, username, password, deviceName?}',
});

export const ImportCsvBody = Type.String({
  description: 'CSV with columns sn,username,password (header line optional; with a header the columns may come in any order and deviceName may be added). Up to 10,000 rows (100,000 for an import operation).',
});

const RowError = Type.Object({ code: Type.String(), message: Type.String(), field: Nullable(Type.String()) });

export const ImportOperationParams = Type.Object({ productKey: Type.String(), importId: Type.String() });

export const ImportOperationView = Type.Object({
  id: Type.String(),
  productKey: Type.String(),
  state: Type.Enum(['RUNNING', 'DONE', 'FAILED']),
  total: Type.Integer({ description: 'Rows in the import' }),
  processed: Type.Integer({ description: 'Rows decided so far (created or failed)' }),
  created: Type.Integer(),
  failed: Type.Integer(),
  startedAt: Type.String(),
  finishedAt: Nullable(Type.String()),
  error: Nullable(RowError),
  failures: Type.Array(Type.Object({ row: Type.Integer(), error: Type.Optional(RowError) }), {
    description: `The failed rows once the operation is finished, the first ${MAX_REPORTED_FAILURES}`,
  }),
  failuresOmitted: Type.Integer({ description: 'Failed rows beyond those listed' }),
}, { description: `An import of up to ${MAX_IMPORT_OPERATION_ROWS} rows running in the background; poll it for progress. Kept an hour after it finishes, in this process.` });

export const ImportResultView = Type.Object({
  total: Type.Integer(),
  created: Type.Integer(),
  failed: Type.Integer(),
  rows: Type.Array(Type.Object({
    row: Type.Integer({ description: '1-based; a CSV header line is not counted' }),
    ok: Type.Boolean(),
    deviceName: Type.Optional(Type.String()),
    error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String(), field: Nullable(Type.String()) })),
  })),
});
