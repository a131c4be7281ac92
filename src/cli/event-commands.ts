/**
 * `gatehouse events list` and `gatehouse events tail`: connection events from a shell (issue 14). A
 * gateway is named by its name or its id. `tail` prints the latest events, then follows /stream live
 * until interrupted (or `--exit-after n` live events, for scripts that wait for the next refusal).
 * `--json` prints one JSON object per line.
 */
import type { Command } from 'commander';
import { ApiError, ok, serverSentEvents, type ApiClient, type ConnectionEvent, type EventQuery } from '../client/index.ts';
import { commandRunner, defaultIo, findGateway, formatTable, withConnection, type CliIo, type ConnectionFlags } from './admin-commands.ts';

interface FilterFlags extends ConnectionFlags {
  gateway?: string;
  device?: string;
  username?: string;
  clientId?: string;
  type?: string;
  reason?: string;
  since?: string;
}

function withFilters(command: Command): Command {
  return command
    .option('--gateway <name>', 'events of this gateway (its name or id)')
    .option('--device <deviceName>', 'events of this device')
    .option('--username <username>', 'what a device presented (found without a device record)')
    .option('--client-id <clientId>', 'the MQTT client id a device presented')
    .option('--type <type>', 'CONNECT_ACCEPTED | CONNECT_REFUSED | CONNECT_ABANDONED | DISCONNECTED')
    .option('--reason <reason>', 'a reason code, e.g. BAD_CREDENTIALS, CERT_REVOKED, THROTTLED')
    .option('--since <time>', 'ISO 8601: events at or after');
}

async function filterQuery(client: ApiClient, flags: FilterFlags): Promise<EventQuery> {
  return {
    gatewayId: flags.gateway === undefined ? undefined : (await findGateway(client, flags.gateway)).id,
    deviceName: flags.device, username: flags.username, clientId: flags.clientId, type: flags.type, reason: flags.reason, since: flags.since,
  };
}

const HEADERS = ['AT', 'TYPE', 'REASON', 'SENT', 'CLIENT ID', 'USERNAME', 'DEVICE', 'ADDRESS', 'COUNT', 'DETAIL'];

function row(e: ConnectionEvent): (string | number | null)[] {
  const sent = e.mqttReasonCode === null ? null : `0x${e.mqttReasonCode.toString(16).padStart(2, '0')}`;
  return [e.at, e.type, e.reason, sent, e.clientId, e.username, e.deviceName, e.address, e.count > 1 ? `x${e.count}` : null, e.detail];
}

/** The filters /events has and /stream does not: applied to live events here. */
function wanted(e: ConnectionEvent, flags: FilterFlags): boolean {
  return (flags.username === undefined || e.username === flags.username) && (flags.clientId === undefined || e.clientId === flags.clientId)
    && (flags.type === undefined || e.type === flags.type) && (flags.reason === undefined || e.reason === flags.reason);
}

export function registerEventCommands(program: Command, io: CliIo = defaultIo): void {
  const run = commandRunner(io);
  const events = program.command('events').description('connection events: why devices could or could not connect, and why they went away');

  withFilters(withConnection(events.command('list').description('stored connection events, newest first')
    .option('--limit <n>', 'at most this many (1-1000)', '50')))
    .action(run<FilterFlags & { limit: string }>(async (client, flags) => {
      const query = await filterQuery(client, flags);
      const page = await ok(client.GET('/api/v1/events', { params: { query: { ...query, limit: Number(flags.limit) } } }));
      io.out(flags.json ? JSON.stringify(page, null, 2) : formatTable(HEADERS, page.items.map(row)));
    }));

  withFilters(withConnection(events.command('tail').description('the latest connection events, then new ones as they happen (Ctrl-C to stop)')
    .option('--lines <n>', 'how many stored events to print first (0-1000)', '10')
    .option('--exit-after <n>', 'stop after this many live events')))
    .action(run<FilterFlags & { lines: string; exitAfter?: string }>(async (client, flags) => {
      const query = await filterQuery(client, flags);
      const print = (e: ConnectionEvent): void => io.out(flags.json ? JSON.stringify(e) : formatTable(HEADERS, [row(e)]).split('\n')[1] ?? '');
      const exitAfter = flags.exitAfter === undefined ? Infinity : Number(flags.exitAfter);
      if (!(exitAfter > 0)) throw new ApiError(0, 'CLI_EXIT_AFTER_INVALID', '--exit-after must be a positive number', 'exit-after');
      // The stream first, so nothing happens between the backlog and the live part unseen.
      const abort = new AbortController();
      const body = await ok(client.GET('/api/v1/stream', {
        params: { query: { types: 'connection', gatewayId: query.gatewayId, deviceName: flags.device } }, parseAs: 'stream', signal: abort.signal,
      }));
      if (body === null) throw new ApiError(0, 'CLI_STREAM_EMPTY', 'the stream answered without a body', null);
      const lines = Number(flags.lines);
      // Reading the backlog writes what the recorder still held, and those rows then go out live on the stream
      // opened above: an event printed from the backlog is not printed (or counted) again when it arrives live.
      const printed = new Set<string>();
      if (lines > 0) {
        const { items } = await ok(client.GET('/api/v1/events', { params: { query: { ...query, limit: lines } } }));
        if (!flags.json) io.out(formatTable(HEADERS, []));
        for (const e of items.reverse()) {
          printed.add(e.id);
          print(e);
        }
      } else if (!flags.json) {
        io.out(formatTable(HEADERS, []));
      }
      let seen = 0;
      try {
        for await (const event of serverSentEvents(body)) {
          if (event.type !== 'connection') continue;
          const e = JSON.parse(event.data) as ConnectionEvent;
          if (!wanted(e, flags) || printed.has(e.id)) continue;
          print(e);
          if (++seen >= exitAfter) break;
        }
      } finally {
        abort.abort();
      }
    }));
}
