/**
 * A gateway's parsing script is compiled in the sandbox when it is saved, like a verification function:
 * a script without `transformPayload` (or whose top-level code fails) used to be accepted and then failed
 * on every uplink. Compiled afresh and disposed at once: a save is not a hot path.
 */
import { GatehouseError } from '../core/errors.ts';
import { ScriptCompileError, type ScriptRunner } from '../sandbox/index.ts';

/** Top-level code of a parsing script gets this long and this much memory at the check (the runtime's own limits apply per message). */
const CHECK_LIMITS = { timeoutMs: 1000, memoryMb: 32 };

export async function checkTransformScript(runner: ScriptRunner, script: string): Promise<void> {
  try {
    const compiled = await runner.compile(script, {
      kind: 'module-function', entry: 'transformPayload', filename: 'transformPayload.js', result: 'object', ...CHECK_LIMITS,
    });
    compiled.dispose();
  } catch (error) {
    if (!(error instanceof ScriptCompileError)) throw error;
    if (error.reason === 'missing-entry') {
      throw new GatehouseError('GW_ERR_SCRIPT_NO_TRANSFORM',
        'dataParsing.script does not define transformPayload(topic, bytes) (a top-level function or module.exports.transformPayload): every message would fail to parse',
        'dataParsing.script');
    }
    throw new GatehouseError('GW_ERR_SCRIPT_SYNTAX', `dataParsing.script: ${error.message}`, 'dataParsing.script');
  }
}
