/** A message payload (base64 from the API) as an operator reads it: UTF-8 text when it is text, hex always. */
export function decodePayload(b64: string): { text: string | null; hex: string } {
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  const hex = [...bytes.slice(0, 256)].map((b) => b.toString(16).padStart(2, '0')).join(' ') + (bytes.length > 256 ? ' …' : '');
  let text: string | null = null;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (/[\u0000-\u0008\u000e-\u001f]/.test(text)) text = null;
  } catch {
    text = null;
  }
  return { text, hex };
}
