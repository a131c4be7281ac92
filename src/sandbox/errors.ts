export type CompileFailureReason = 'syntax' | 'missing-entry' | 'init-threw' | 'init-timeout' | 'init-memory';

/**
 * The operator's script cannot be used. `message` is what the operator sees
 * ("line 3: Unexpected token ';'"); `detail` is the same without the location.
 */
export class ScriptCompileError extends Error {
  readonly reason: CompileFailureReason;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly detail: string;

  constructor(reason: CompileFailureReason, detail: string, line?: number, column?: number) {
    super(line === undefined ? detail : `line ${line}: ${detail}`);
    this.name = 'ScriptCompileError';
    this.reason = reason;
    this.detail = detail;
    this.line = line;
    this.column = column;
  }
}

/** The first frame of a stack that points into the operator's file: "at handler (fn.js:7:11)". */
export function lineFromStack(stack: string, filename: string): number | undefined {
  const escaped = filename.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`${escaped}:(\\d+):\\d+`).exec(stack);
  return match ? Number(match[1]) : undefined;
}
