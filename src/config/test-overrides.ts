/**
 * `GATEHOUSE_TEST_OVERRIDES`: the in-process tests' shortened internal timings and bounds (`GatehouseOverrides`,
 * app.ts) given to a process started by `npm start`, so the end-to-end suite can run against worker processes
 * (docs/testing.md). Test-only: a production install never sets it. The JSON is checked against the shape of the
 * defaults it overrides, so a misspelt or mistyped field refuses the start with its path instead of being ignored.
 */
import { GatehouseError } from '../core/errors.ts';

export const TEST_OVERRIDES_ENV = 'GATEHOUSE_TEST_OVERRIDES';

/** A tree of defaults (numbers at its leaves): its keys are the only ones an override may name. */
export type OverrideShape = object;

function invalid(why: string): GatehouseError {
  return new GatehouseError('GW_ERR_CONFIG_INVALID', `${TEST_OVERRIDES_ENV} ${why}`, TEST_OVERRIDES_ENV);
}

function checked(value: unknown, shape: OverrideShape, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${at === '' ? 'must be a JSON object' : `${at} must be an object`}, got ${JSON.stringify(value)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, given] of Object.entries(value)) {
    const path = at === '' ? key : `${at}.${key}`;
    const expected: unknown = Object.hasOwn(shape, key) ? (shape as Record<string, unknown>)[key] : undefined;
    if (typeof expected !== 'number' && (typeof expected !== 'object' || expected === null)) throw invalid(`${path} is not an override (known here: ${Object.keys(shape).join(', ')})`);
    if (typeof expected === 'number') {
      if (typeof given !== 'number' || !Number.isFinite(given) || given < 0) throw invalid(`${path} must be a number >= 0, got ${JSON.stringify(given)}`);
      out[key] = given;
    } else {
      out[key] = checked(given, expected, path);
    }
  }
  return out;
}

/**
 * The overrides in `raw` (undefined or empty: none), checked against `shape`: every field one of the shape's and a
 * number >= 0 where the shape has a number. A `GW_ERR_CONFIG_INVALID` naming the field otherwise.
 */
export function parseTestOverrides(raw: string | undefined, shape: OverrideShape): Record<string, unknown> | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw invalid(`is not JSON: ${(error as Error).message}`);
  }
  return checked(value, shape, '');
}
