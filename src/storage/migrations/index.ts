/**
 * Migrations are TypeScript modules bundled with the app (no migration files to ship or find at run
 * time), listed here in order. Add a new one as `NNNN-what.ts` and a line below; never edit an
 * applied one.
 */
import type { Migration, MigrationProvider } from 'kysely';
import type { Dialect } from '../schema.ts';
import { initialSchema } from './0001-initial.ts';

export class BundledMigrations implements MigrationProvider {
  readonly #dialect: Dialect;

  constructor(dialect: Dialect) {
    this.#dialect = dialect;
  }

  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve({
      '0001-initial': initialSchema(this.#dialect),
    });
  }
}
