/**
 * Parses operator JavaScript without running it, so a syntax error is refused when it is saved rather
 * than discovered on the first message. `vm.Script` compiles only; the sandbox runs the code later.
 */
import { Script } from 'node:vm';

/** The syntax error message with its line and column, or null when the source parses. */
export function findSyntaxError(source: string, filename: string): string | null {
  try {
    new Script(source, { filename });
    return null;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    const location = /:(\d+)\s*$/m.exec((error.stack ?? '').split('\n')[0] ?? '');
    return location ? `${error.message} (line ${location[1]})` : error.message;
  }
}
