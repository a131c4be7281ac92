/** What every registry service shares: storage, the secret box, the event bus, the clock. */
import { GatehouseError } from '../core/errors.ts';
import type { ScriptRunner } from '../sandbox/index.ts';
import type { Logger } from '../core/logger.ts';
import type { RegistryEvents } from './events.ts';
import { DuplicateKeyError, type Storage } from './ports.ts';
import type { ScryptCost } from './passwords.ts';
import type { SecretBox } from './secrets.ts';

export interface RegistryContext {
  storage: Storage;
  secrets: SecretBox;
  events: RegistryEvents;
  logger: Logger;
  /** Host name for gateway URLs. */
  publicHost: string;
  now(): Date;
  /** The process's one sandbox: function sources compile in it when saved, and dry runs run there. */
  runner: ScriptRunner;
  /** scrypt cost of the password hashes written now. */
  passwordCost: ScryptCost;
  /** This process's node id, recorded with a device's presence (null: none recorded, e.g. a registry in a test). */
  nodeId: string | null;
}

/** A unique-constraint race turned into the error the pre-check would have given. */
export function translateDuplicate(error: unknown): unknown {
  if (!(error instanceof DuplicateKeyError)) return error;
  switch (error.key) {
    case 'gateways.name': return new GatehouseError('GW_ERR_GATEWAY_NAME_TAKEN', undefined, 'name');
    case 'gateways.port': return new GatehouseError('GW_ERR_PORT_TAKEN', undefined, 'port');
    case 'devices.device_name': return new GatehouseError('GW_ERR_DEVICE_NAME_TAKEN', undefined, 'deviceName');
    case 'devices.username': return new GatehouseError('GW_ERR_USERNAME_TAKEN', undefined, 'username');
    case 'functions.name': return new GatehouseError('GW_ERR_FUNCTION_NAME_TAKEN', undefined, 'name');
    default: return new GatehouseError('GW_ERR_CONFLICT', `${error.key} collided; retry`);
  }
}

/** Runs a write and rethrows storage's duplicate-key errors as registry errors. */
export async function withDuplicatesTranslated<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw translateDuplicate(error);
  }
}
