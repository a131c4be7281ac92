/**
 * Rules for stored verification functions: name, source and the sandbox limits. Whether the source
 * runs is checked by compiling it in the sandbox (function-sandbox.ts), which is asynchronous.
 */
import { GatehouseError } from '../core/errors.ts';
import { SANDBOX_LIMITS } from '../sandbox/index.ts';
import { MAX_SCRIPT_LENGTH } from './gateway-rules.ts';
import type { FunctionInput } from './types.ts';

export const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const TIMEOUT_MS = { min: 10, max: 30_000, default: 5_000 } as const;
/** The sandbox's own range of heap caps per script. */
export const MEMORY_MB = { min: SANDBOX_LIMITS.memoryMb.min, max: SANDBOX_LIMITS.memoryMb.max, default: 64 } as const;

export function checkFunctionName(name: unknown): string {
  if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) throw new GatehouseError('GW_ERR_FUNCTION_NAME_INVALID', undefined, 'name');
  return name;
}

export function checkFunctionInput(input: FunctionInput): Required<FunctionInput> {
  const { source } = input;
  if (typeof source !== 'string' || source.trim() === '') throw new GatehouseError('GW_ERR_SCRIPT_REQUIRED', 'source is required', 'source');
  if (source.length > MAX_SCRIPT_LENGTH) throw new GatehouseError('GW_ERR_VALIDATION', `source is longer than ${MAX_SCRIPT_LENGTH} characters`, 'source');
  return {
    source,
    timeoutMs: checkLimit(input.timeoutMs ?? TIMEOUT_MS.default, TIMEOUT_MS, 'timeoutMs'),
    memoryMb: checkLimit(input.memoryMb ?? MEMORY_MB.default, MEMORY_MB, 'memoryMb'),
  };
}

function checkLimit(value: unknown, range: { min: number; max: number }, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new GatehouseError('GW_ERR_FUNCTION_LIMIT_OUT_OF_RANGE', `${field} must be an integer from ${range.min} to ${range.max}`, field);
  }
  return value;
}
