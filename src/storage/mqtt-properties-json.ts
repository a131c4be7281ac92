/** MQTT 5 forwarded properties as JSON text (correlation data is binary: kept as base64). */
import type { ForwardedProperties } from '../mqtt/codec.ts';

export function encodeProperties(p: ForwardedProperties | undefined): string | null {
  if (p === undefined) return null;
  return JSON.stringify({ ...p, correlationData: p.correlationData?.toString('base64') });
}

export function decodeProperties(text: string | null): ForwardedProperties | undefined {
  if (text === null) return undefined;
  const raw = JSON.parse(text) as Omit<ForwardedProperties, 'correlationData'> & { correlationData?: string };
  const { correlationData, ...rest } = raw;
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') };
}
