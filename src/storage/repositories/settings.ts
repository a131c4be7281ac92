import type { Kysely } from 'kysely';
import type { SettingsRepository } from '../../registry/ports.ts';
import type { Database } from '../schema.ts';

export class KyselySettingsRepository implements SettingsRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async get(key: string): Promise<string | undefined> {
    const row = await this.#db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async put(key: string, value: string): Promise<void> {
    await this.#db.insertInto('settings').values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
  }
}
