/**
 * The sandbox for operator JavaScript (verification functions, transformPayload). It knows
 * nothing about MQTT: callers compile a source once and invoke it with JSON values and bytes.
 */
export { QuickJsRunner, type QuickJsRunnerOptions } from './quickjs-runner.ts';
export { ScriptCompileError, type CompileFailureReason } from './errors.ts';
export {
  SANDBOX_LIMITS, INVOKE_ERROR_KINDS,
  type CompiledScript, type CompileOptions, type EntryName, type InvokeError, type InvokeErrorKind,
  type InvokeOptions, type InvokeResult, type JsonValue, type LogLevel, type LogLine, type SandboxArg,
  type ScriptRunner, type ScriptStats,
} from './types.ts';
