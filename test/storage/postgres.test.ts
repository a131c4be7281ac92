/**
 * The repository contract on PostgreSQL, against the server in GATEHOUSE_TEST_DATABASE_URL (see
 * README.md here for the setup). Each test gets a schema of its own, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { after, test } from 'node:test';
import pg from 'pg';
import { silentLogger } from '../../src/core/logger.ts';
import { openStorage } from '../../src/storage/index.ts';
import { repositoryContract } from './repository.contract.ts';
import { platformRepositoryContract } from './platform-repositories.contract.ts';
import { devicePropertiesContract } from './device-properties.contract.ts';
import { connectionEventsContract } from './connection-events.contract.ts';

const url = process.env.GATEHOUSE_TEST_DATABASE_URL;

if (url === undefined || url === '') {
  test('postgres repository contract', { skip: 'GATEHOUSE_TEST_DATABASE_URL is not set; see test/storage/README.md' }, () => {});
} else {
  const run = randomBytes(4).toString('hex');
  const schemas: string[] = [];
  after(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`);
    } finally {
      await client.end();
    }
  }, { timeout: 30_000 });

  const openFresh = async () => {
    const schema = `gh_test_${run}_${schemas.length + 1}`;
    schemas.push(schema);
    return openStorage({ dataDir: os.tmpdir(), databaseUrl: url, postgresSchema: schema, logger: silentLogger });
  };
  repositoryContract('postgres', openFresh);
  platformRepositoryContract('postgres', openFresh);
  devicePropertiesContract('postgres', openFresh);
  connectionEventsContract('postgres', openFresh);
}
