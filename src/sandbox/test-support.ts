import assert from 'node:assert/strict';
import type { InvokeError, InvokeResult, JsonValue } from './types.ts';

/** For the sandbox's own tests: the value of a call that must have succeeded. */
export function valueOf(result: InvokeResult): JsonValue {
  assert.ok(result.ok, `expected a value, got ${JSON.stringify(result)}`);
  return result.value;
}

/** For the sandbox's own tests: the error of a call that must have failed. */
export function errorOf(result: InvokeResult): InvokeError {
  assert.ok(!result.ok, `expected an error, got ${JSON.stringify(result)}`);
  return result.error;
}
