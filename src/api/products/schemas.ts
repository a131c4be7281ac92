/** Product and device schemas (devices live under their product). */
import { Type } from 'typebox';
import { Nullable } from '../common-schemas.ts';

export const ProductView = Type.Object({
  productKey: Type.String(),
  name: Type.String({ description: 'Gateway<gateway ID>' }),
  gatewayId: Type.String(),
  deviceCount: Type.Integer(),
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
  limit: Type.Optional(Type.Integer({ description: '1-1000, default 100' })),
  offset: Type.Optional(Type.Integer({ description: 'Default 0' })),
});

export const DeviceList = Type.Object({
  items: Type.Array(DeviceView, { description: 'Ordered by device name' }),
  total: Type.Integer({ description: 'Devices in the product' }),
});

/** Rows are checked one by one by the registry, so a bad row fails alone instead of the whole request. */
export const ImportJsonBody = Type.Array(Type.Unknown(), {
  description: 'Up to 10,000 rows, each {sn?, username, password, deviceName?}',
});

export const ImportCsvBody = Type.String({
  description: 'CSV with columns sn,username,password (header line optional; with a header the columns may come in any order and deviceName may be added). Up to 10,000 rows.',
});

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
