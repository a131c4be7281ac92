/**
 * The Gatehouse engine with data parsing on (issue 6): the bare engine of `gatehouse broker`, with every
 * client given a device identity and the platform's uplink tap running a typical `transformPayload`
 * on each PUBLISH in the shared sandbox. Compared with `gatehouse`, it shows what parsing costs per
 * message (broker CPU µs/msg) and whether it slows MQTT delivery. Parsed results are counted and
 * dropped: storage is not part of this measurement. With `--journal FILE` (the `gatehouse-journal`
 * broker) every QoS 1/2 uplink is also committed to the platform's uplink journal before its PUBACK,
 * and the rows are removed in batches as the message store settles them (every 200 ms), as `npm start`
 * does: the difference to `gatehouse-parsing` is the journal's cost per message. With `--no-parsing` (the
 * `gatehouse-tap` broker) the tap runs without a script: parsing on against parsing off, the same program.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Broker, listen } from '../../src/broker/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { LoopPressure } from '../../src/core/loop-pressure.ts';
import { DEFAULT_PLATFORM_OPTIONS, GatewayParser, PARSING_NICENESS, UplinkJournal, UplinkTap, type JournalTicket } from '../../src/platform/index.ts';
import { SqliteUplinkJournal } from '../../src/storage/sqlite-uplink-journal.ts';
import { QuickJsRunner } from '../../src/sandbox/index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' }, 'tls-port': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
    journal: { type: 'string' },
    'no-parsing': { type: 'boolean' },
  },
});

/** Reads a counter and a temperature from the first bytes, as a sensor decoder would. */
const SCRIPT = `
function transformPayload(topic, bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    method: 'thing.event.property.post',
    params: { seq: view.getUint32(0), temperature: view.getInt16(4) / 10, length: bytes.length },
  };
}`;

const logger = createLogger(process.env.GATEHOUSE_LOG_LEVEL ?? 'warn');
const broker = new Broker({
  logger,
  hooks: {
    authenticate: (req) => ({ ok: true, identity: { gatewayId: 'bench', productKey: 'bench', deviceName: req.clientId } }),
  },
});
// As `npm start` runs parsing: a sandbox of its own whose threads yield the core to the event loop.
const runner = new QuickJsRunner({ niceness: PARSING_NICENESS });
// The limits `npm start` gives each gateway's parsing (its queue of messages waiting for the sandbox).
// And, as there, no parsing while the event loop is saturated.
const pressure = new LoopPressure();
const parser = new GatewayParser(runner, DEFAULT_PLATFORM_OPTIONS.parsing, logger, pressure);
let parsed = 0;
let failed = 0;
const journalFile = values.journal === undefined ? null : new SqliteUplinkJournal(values.journal);
const journal = journalFile === null ? undefined : new UplinkJournal(journalFile, logger);
let settled: JournalTicket[] = [];
const settleTimer = setInterval(() => {
  const ids = settled;
  settled = [];
  journal?.settled(ids);
}, 200);
const tap = new UplinkTap({ broker, config: { dataParsing: { enabled: values['no-parsing'] !== true, script: SCRIPT } } }, parser, {
  uplink: (u) => {
    if (u.outcome?.ok === true) parsed++;
    else if (u.outcome !== null && u.outcome.kind !== 'dropped' && u.outcome.kind !== 'shed') failed++;
    if (u.ticket !== null) settled.push(u.ticket);
  },
}, journal);

const listeners = [await listen(broker, { host: '127.0.0.1', port: Number(values.port) })];
if (values['tls-port'] !== undefined && values['tls-cert'] !== undefined && values['tls-key'] !== undefined) {
  listeners.push(await listen(broker, {
    host: '127.0.0.1', port: Number(values['tls-port']),
    tls: { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) },
  }));
}

const stop = async (): Promise<void> => {
  logger.warn({ parsed, failed, dropped: parser.counters.dropped, shed: parser.counters.shed }, 'bench_parsing_totals');
  pressure.stop();
  tap.close();
  clearInterval(settleTimer);
  runner.dispose();
  await broker.close();
  await Promise.all(listeners.map((l) => l.close()));
  await journalFile?.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
