/**
 * Unique-constraint violations from either engine, turned into the port's `DuplicateKeyError` so the
 * registry can name the field. PostgreSQL names the constraint; SQLite names the table and columns.
 */
import { DuplicateKeyError, type UniqueKey } from '../registry/ports.ts';

interface UniqueConstraint {
  key: UniqueKey;
  constraint: string;
  /** `table.column` as SQLite lists them. */
  columns: string;
}

/** Must match the constraint names in migrations. */
const UNIQUE_CONSTRAINTS: readonly UniqueConstraint[] = [
  { key: 'gateways.id', constraint: 'gateways_pk', columns: 'gateways.id' },
  { key: 'gateways.name', constraint: 'gateways_name_unique', columns: 'gateways.name' },
  { key: 'gateways.port', constraint: 'gateways_port_unique', columns: 'gateways.port' },
  { key: 'products.product_key', constraint: 'products_pk', columns: 'products.product_key' },
  { key: 'devices.device_name', constraint: 'devices_pk', columns: 'devices.product_key, devices.device_name' },
  { key: 'devices.username', constraint: 'devices_username_unique', columns: 'devices.product_key, devices.username' },
  { key: 'functions.name', constraint: 'functions_pk', columns: 'functions.name' },
];

const SQLITE_UNIQUE = /^UNIQUE constraint failed: (.+)$/;

/** The matching DuplicateKeyError, or the error unchanged. */
export function mapDuplicateKey(error: unknown): unknown {
  if (typeof error !== 'object' || error === null) return error;
  const { code, constraint, message } = error as { code?: unknown; constraint?: unknown; message?: unknown };
  let match: UniqueConstraint | undefined;
  if (code === '23505' && typeof constraint === 'string') {
    match = UNIQUE_CONSTRAINTS.find((u) => u.constraint === constraint);
  } else if ((code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') && typeof message === 'string') {
    const columns = SQLITE_UNIQUE.exec(message)?.[1];
    match = UNIQUE_CONSTRAINTS.find((u) => u.columns === columns);
  }
  return match ? new DuplicateKeyError(match.key, { cause: error }) : error;
}

/** Runs a write, mapping duplicate keys. */
export async function mappingDuplicates<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw mapDuplicateKey(error);
  }
}
