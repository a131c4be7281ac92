/**
 * Text that came from a device or an operator's code, made fit for a log line: bounded in length,
 * control characters escaped, and a given secret (the device's password) never written out. A
 * function that echoes the password, or a client id of 65,535 bytes, must not end up in the log as is.
 */
const DEFAULT_MAX = 200;

export function logText(text: string | undefined, options: { max?: number; secret?: Buffer | string } = {}): string | undefined {
  if (text === undefined) return undefined;
  const max = options.max ?? DEFAULT_MAX;
  let out = text.length > max * 4 ? text.slice(0, max * 4) : text;
  const secret = options.secret === undefined ? '' : options.secret.toString();
  if (secret.length > 0) out = out.split(secret).join('[password]');
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return out.length > max ? `${out.slice(0, max)}…(${text.length} chars)` : out;
}
