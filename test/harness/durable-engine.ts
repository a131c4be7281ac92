/**
 * A child-process engine with the SQLite state store, for crash tests: prints its port as JSON on
 * stdout and runs until killed.
 *   node --import tsx test/harness/durable-engine.ts <state.db> [port]
 */
import BetterSqlite3 from 'better-sqlite3';
import { Broker, listen } from '../../src/broker/index.ts';
import { SqliteBrokerStore } from '../../src/storage/sqlite-broker-store.ts';

const [file, port] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: durable-engine.ts <state.db> [port]');
const db = new BetterSqlite3(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
const broker = new Broker({ persistence: new SqliteBrokerStore(db, 'crash-test') });
await broker.restore();
const listener = await listen(broker, { host: '127.0.0.1', port: Number(port ?? 0) });
process.stdout.write(`${JSON.stringify({ port: listener.port })}\n`);
