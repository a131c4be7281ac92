/**
 * Device properties in rows of their own (issue 17): a property post writes the keys it changes, not
 * the whole document, and two posts for different keys of one device cannot overwrite each other.
 * The JSON column older versions kept in `devices` is moved into rows and dropped.
 */
import type { Kysely, Migration } from 'kysely';
import { propertyBytes } from '../../registry/device-properties.ts';

/** The two tables as this migration finds and leaves them (not schema.ts, which moves on). */
interface Tables {
  devices: { product_key: string; device_name: string; properties: string };
  device_properties: { product_key: string; device_name: string; name: string; value: string; bytes: number };
}

/** Devices read per step while moving: bounded memory whatever the fleet's size. */
const PAGE = 500;
/** Rows per INSERT: 5 parameters each, under SQLite's 32,766 and PostgreSQL's 65,535. */
const INSERT_CHUNK = 1000;

export function devicePropertiesSchema(): Migration {
  return {
    async up(unknownDb: Kysely<unknown>): Promise<void> {
      const db = unknownDb as Kysely<Tables>;
      await db.schema.createTable('device_properties')
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        // The property as JSON ({value, time} from an Alink post; any shape round-trips).
        .addColumn('value', 'text', (c) => c.notNull())
        // What this property adds to the device's JSON document, in UTF-8 bytes: the byte cap is a sum.
        .addColumn('bytes', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('device_properties_pk', ['product_key', 'device_name', 'name'])
        .addForeignKeyConstraint('device_properties_device_fk', ['product_key', 'device_name'], 'devices',
          ['product_key', 'device_name'], (fk) => fk.onDelete('cascade'))
        .execute();

      let after: { productKey: string; deviceName: string } | undefined;
      for (;;) {
        let page = db.selectFrom('devices').select(['product_key', 'device_name', 'properties'])
          .orderBy('product_key').orderBy('device_name').limit(PAGE);
        if (after !== undefined) {
          const { productKey, deviceName } = after;
          page = page.where((eb) => eb.or([
            eb('product_key', '>', productKey),
            eb.and([eb('product_key', '=', productKey), eb('device_name', '>', deviceName)]),
          ]));
        }
        const devices = await page.execute();
        if (devices.length === 0) break;
        const rows = devices.flatMap((d) => Object.entries(JSON.parse(d.properties) as Record<string, unknown>).map(([name, value]) => {
          const json = JSON.stringify(value);
          return { product_key: d.product_key, device_name: d.device_name, name, value: json, bytes: propertyBytes(name, json) };
        }));
        for (let i = 0; i < rows.length; i += INSERT_CHUNK) await db.insertInto('device_properties').values(rows.slice(i, i + INSERT_CHUNK)).execute();
        const last = devices[devices.length - 1] as Tables['devices'];
        after = { productKey: last.product_key, deviceName: last.device_name };
      }
      await db.schema.alterTable('devices').dropColumn('properties').execute();
    },
  };
}
