/**
 * The registry's use of the sandbox: a function's source is compiled in a real isolate when it is
 * saved (so a syntax error, a missing `handler` or top-level code that throws is a 400 with the line),
 * and the dry run executes it there. Both compile afresh and dispose at once: neither is a hot path,
 * and no isolate is kept for a function that no gateway runs.
 */
import { GatehouseError } from '../core/errors.ts';
import { ScriptCompileError, type InvokeError, type JsonValue, type LogLine, type ScriptRunner } from '../sandbox/index.ts';
import { interpretVerificationOutput, type VerificationVerdict } from './verification-result.ts';

export const FUNCTION_FILENAME = 'function.js';

export interface FunctionLimits {
  timeoutMs: number;
  memoryMb: number;
}

/** The verification input (DESIGN.md "Verification function"). */
export interface VerificationEvent {
  userName: string | null;
  password: string | null;
  clientId: string;
  certificateCommonName: string | null;
}

export interface DryRunResult {
  /** What the function returned; null when it failed. */
  output: { [key: string]: JsonValue } | null;
  /** Why it produced no usable value (timeout, memory, threw, bad-result …); null when it answered. */
  error: InvokeError | null;
  /** What a CONNECT with this input would get. */
  decision: { result: 'ACCEPT' | 'REJECT' | 'SERVER_UNAVAILABLE'; deviceName: string | null; reason: string | null; message: string | null };
  logs: LogLine[];
  durationMs: number;
}

async function compile(runner: ScriptRunner, source: string, limits: FunctionLimits) {
  try {
    return await runner.compile(source, {
      kind: 'module-function', entry: 'handler', filename: FUNCTION_FILENAME, timeoutMs: limits.timeoutMs, memoryMb: limits.memoryMb,
    });
  } catch (error) {
    if (error instanceof ScriptCompileError) throw new GatehouseError('GW_ERR_SCRIPT_SYNTAX', `source: ${error.message}`, 'source');
    throw error;
  }
}

/** Throws GW_ERR_SCRIPT_SYNTAX ("source: line 3: Unexpected token …") when the source cannot run. */
export async function checkFunctionSource(runner: ScriptRunner, source: string, limits: FunctionLimits): Promise<void> {
  (await compile(runner, source, limits)).dispose();
}

export async function dryRunFunction(runner: ScriptRunner, source: string, limits: FunctionLimits, event: VerificationEvent): Promise<DryRunResult> {
  const script = await compile(runner, source, limits);
  try {
    const result = await script.invoke([{ ...event }]);
    const base = { logs: result.logs, durationMs: result.durationMs };
    if (!result.ok) {
      return { ...base, output: null, error: result.error, decision: { result: 'SERVER_UNAVAILABLE', deviceName: null, reason: `function_${result.error.kind}`, message: null } };
    }
    // Compiled with result 'object': a successful value is a plain object.
    return { ...base, output: result.value as { [key: string]: JsonValue }, error: null, decision: decisionOf(interpretVerificationOutput(result.value)) };
  } finally {
    script.dispose();
  }
}

function decisionOf(verdict: VerificationVerdict): DryRunResult['decision'] {
  switch (verdict.kind) {
    case 'accept': return { result: 'ACCEPT', deviceName: verdict.deviceName, reason: null, message: null };
    case 'reject': return { result: 'REJECT', deviceName: null, reason: verdict.reason, message: verdict.message };
    case 'invalid': return { result: 'SERVER_UNAVAILABLE', deviceName: null, reason: verdict.reason, message: null };
  }
}
