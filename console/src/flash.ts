/** One message carried to the next page (e.g. "gateway created" shown on the list). */
export interface Flash { kind: 'ok' | 'warn' | 'error'; text: string; details?: string[] }

let pending: Flash | null = null;

export function setFlash(flash: Flash): void {
  pending = flash;
}

export function takeFlash(): Flash | null {
  const f = pending;
  pending = null;
  return f;
}
