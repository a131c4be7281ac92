/**
 * What a verification function's answer means (DESIGN.md "Verification function"): one reading shared
 * by the gateway's FUNCTION provider and the API's dry run, so the dry run shows what a CONNECT would get.
 */
import { GatehouseError } from '../core/errors.ts';
import { checkDeviceName } from './device-rules.ts';
import { checkAclRules, type AclRule } from './access-control.ts';

export type VerificationVerdict =
  /** `acl`: topic access rules the answer carried for this device, applied before the gateway's. */
  | { kind: 'accept'; deviceName: string; acl?: AclRule[] }
  /** The function said no (or accepted a device it did not name validly): bad credentials. */
  | { kind: 'reject'; reason: string; message: string | null }
  /** The answer is not a verification result: a fault of the function, never an accept. */
  | { kind: 'invalid'; reason: string };

const MAX_MESSAGE = 200;

function truthOf(result: unknown): boolean | undefined {
  if (result === true || result === 'true') return true;
  if (result === false || result === 'false') return false;
  return undefined;
}

/** Reads `{result: "true"|"false"|boolean, deviceName?, message?, acl?}`. */
export function interpretVerificationOutput(output: unknown): VerificationVerdict {
  if (output === null || typeof output !== 'object' || Array.isArray(output)) {
    return { kind: 'invalid', reason: 'the function did not return an object' };
  }
  const { result, deviceName, message, acl } = output as Record<string, unknown>;
  const accepted = truthOf(result);
  if (accepted === undefined) {
    return { kind: 'invalid', reason: `result must be "true", "false" or a boolean, got ${JSON.stringify(result) ?? 'undefined'}` };
  }
  const text = typeof message === 'string' ? message.slice(0, MAX_MESSAGE) : null;
  if (!accepted) return { kind: 'reject', reason: 'function_rejected', message: text };
  if (deviceName === undefined || deviceName === null || deviceName === '') {
    return { kind: 'reject', reason: 'accepted_without_device_name', message: text };
  }
  const name = checkedDeviceName(deviceName);
  if (name === undefined) return { kind: 'reject', reason: 'device_name_invalid', message: text };
  if (acl === undefined || acl === null) return { kind: 'accept', deviceName: name };
  // Rules that do not check out are a fault of the answer, never an accept with rules nobody meant.
  const rules = deviceAclOf(acl);
  if (typeof rules === 'string') return { kind: 'invalid', reason: rules };
  return { kind: 'accept', deviceName: name, acl: rules };
}

/** The rules of a third-party answer's `acl`, or why they are not rules (shared with the HTTPS provider). */
export function deviceAclOf(acl: unknown): AclRule[] | string {
  try {
    return checkAclRules(acl, 'acl');
  } catch (error) {
    if (error instanceof GatehouseError) return `${error.code}: ${error.message}`;
    throw error;
  }
}

/** The name when it follows the device name rules, else undefined. */
export function checkedDeviceName(name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined;
  try {
    checkDeviceName(name);
    return name;
  } catch (error) {
    if (error instanceof GatehouseError) return undefined;
    throw error;
  }
}
