/**
 * How much room a device's properties take, counted the same way wherever they are stored or checked:
 * each property adds `"name":value,` to the device's JSON document, so the sum over its properties plus
 * one (the braces, less the last comma) is exactly `Buffer.byteLength(JSON.stringify(properties))`.
 * Counting per property lets a post be checked against the byte cap without reading the others' values.
 */
export function propertyBytes(name: string, valueJson: string): number {
  return Buffer.byteLength(JSON.stringify(name)) + Buffer.byteLength(valueJson) + 2;
}

/** The JSON size of a device's properties from the sum of `propertyBytes` over them. */
export function documentBytes(count: number, propertyBytesSum: number): number {
  return count === 0 ? 2 : propertyBytesSum + 1;
}

/** One property as stored: its JSON, and what it adds to the document. */
export interface StoredProperty {
  name: string;
  valueJson: string;
  bytes: number;
}

export function storedProperty(name: string, value: unknown): StoredProperty {
  // JSON.stringify(undefined) is undefined; a property without a value is stored as null.
  const valueJson = JSON.stringify(value) ?? 'null';
  return { name, valueJson, bytes: propertyBytes(name, valueJson) };
}

/** A device's properties after a post would apply, for the caps to judge before anything is written. */
export interface PropertyTotals {
  count: number;
  /** JSON bytes of the whole document. */
  bytes: number;
}
