/** The first schema: gateways, products, devices, functions, settings. */
import type { Kysely, Migration } from 'kysely';

export function initialSchema(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createTable('gateways')
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('protocol', 'text', (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('data_parsing', 'text', (c) => c.notNull())
        .addColumn('auth_type', 'text', (c) => c.notNull())
        .addColumn('third_party', 'text')
        .addColumn('x509_enabled', 'integer', (c) => c.notNull())
        .addColumn('ocsp', 'text', (c) => c.notNull())
        .addColumn('server_certificate_chain', 'text', (c) => c.notNull())
        .addColumn('server_private_key_encrypted', 'text', (c) => c.notNull())
        .addColumn('device_root_certificates', 'text')
        .addColumn('trusted_certificate', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('status_reason', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('gateways_pk', ['id'])
        .addUniqueConstraint('gateways_name_unique', ['name'])
        .addUniqueConstraint('gateways_port_unique', ['port'])
        .execute();

      await db.schema.createTable('products')
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('gateway_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('products_pk', ['product_key'])
        .addUniqueConstraint('products_gateway_unique', ['gateway_id'])
        .addForeignKeyConstraint('products_gateway_fk', ['gateway_id'], 'gateways', ['id'], (fk) => fk.onDelete('cascade'))
        .execute();

      await db.schema.createTable('devices')
        .addColumn('product_key', 'text', (c) => c.notNull())
        .addColumn('device_name', 'text', (c) => c.notNull())
        .addColumn('username', 'text')
        .addColumn('password_hash', 'text')
        .addColumn('sn', 'text')
        .addColumn('origin', 'text', (c) => c.notNull())
        .addColumn('connection_state', 'text', (c) => c.notNull())
        .addColumn('disabled', 'integer', (c) => c.notNull())
        .addColumn('last_online_at', 'text')
        .addColumn('client_address', 'text')
        .addColumn('certificate', 'text')
        .addColumn('properties', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('devices_pk', ['product_key', 'device_name'])
        // NULL usernames (auto-created devices) do not collide: both engines treat NULLs as distinct.
        .addUniqueConstraint('devices_username_unique', ['product_key', 'username'])
        .addForeignKeyConstraint('devices_product_fk', ['product_key'], 'products', ['product_key'], (fk) => fk.onDelete('cascade'))
        .execute();

      await db.schema.createTable('functions')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('timeout_ms', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('functions_pk', ['name'])
        .execute();

      await db.schema.createTable('settings')
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('settings_pk', ['key'])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['settings', 'functions', 'devices', 'products', 'gateways']) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
