/**
 * A child-process engine with the SQLite state store, for crash tests: prints its port as JSON on
 * stdout and runs until killed.
 *   node --import tsx test/harness/durable-engine.ts <state.db> [port]
 */
import { Broker, listen } from '../../src/broker/index.ts';
import { SqliteStateStores } from '../../src/storage/sqlite-state-stores.ts';

const [file, port] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: durable-engine.ts <state.db> [port]');
// As the product writes it: on the writer's thread, acknowledgements held until each batch commits.
const broker = new Broker({ persistence: new SqliteStateStores(file).open('crash-test') });
await broker.restore();
const listener = await listen(broker, { host: '127.0.0.1', port: Number(port ?? 0) });
process.stdout.write(`${JSON.stringify({ port: listener.port })}\n`);
