/**
 * `gatehouse events list` and `gatehouse events tail`: connection events from a shell (issue 14). A
 * gateway is named by its name or its id. `tail` prints the latest events, then follows /stream live
 * until interrupted (or `--exit-after n` live events, for scripts that wait for the next refusal).
 * `--json` prints one JSON object per line.
 */
import type { Command } from 'commander';
import {
  ApiError, commandRunner, defaultIo, findGateway, formatTable, withConnection, type ApiClient, type CliIo, type ConnectionFlags,
} from './admin-commands.ts';

interface EventView {
  id: string;
  gatewayId: string;
  type: string;
  reason: string;
  detail: string | null;
  mqttReasonCode: number | null;
  clientId: string | null;
  username: string | null;
  deviceName: string | null;
  address: string | null;
  at: string;
  count: number;
  lastAt: string;
}

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

async function filterQuery(client: ApiClient, flags: FilterFlags): Promise<URLSearchParams> {
  const query = new URLSearchParams();
  if (flags.gateway !== undefined) query.set('gatewayId', (await findGateway(client, flags.gateway)).id);
  if (flags.device !== undefined) query.set('deviceName', flags.device);
  if (flags.username !== undefined) query.set('username', flags.username);
  if (flags.clientId !== undefined) query.set('clientId', flags.clientId);
  if (flags.type !== undefined) query.set('type', flags.type);
  if (flags.reason !== undefined) query.set('reason', flags.reason);
  if (flags.since !== undefined) query.set('since', flags.since);
  return query;
}

const HEADERS = ['AT', 'TYPE', 'REASON', 'SENT', 'CLIENT ID', 'USERNAME', 'DEVICE', 'ADDRESS', 'COUNT', 'DETAIL'];

function row(e: EventView): (string | number | null)[] {
  const sent = e.mqttReasonCode === null ? null : `0x${e.mqttReasonCode.toString(16).padStart(2, '0')}`;
  return [e.at, e.type, e.reason, sent, e.clientId, e.username, e.deviceName, e.address, e.count > 1 ? `x${e.count}` : null, e.detail];
}

/** The filters /events has and /stream does not: applied to live events here. */
function wanted(e: EventView, flags: FilterFlags): boolean {
  return (flags.username === undefined || e.username === flags.username) && (flags.clientId === undefined || e.clientId === flags.clientId)
    && (flags.type === undefined || e.type === flags.type) && (flags.reason === undefined || e.reason === flags.reason);
}

/** Server-sent events of one type from a byte stream: each `data:` line of an event of that type, parsed. */
async function* sse<T>(body: ReadableStream<Uint8Array>, type: string): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const lines = block.split('\n');
      if (!lines.includes(`event: ${type}`)) continue;
      const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data !== '') yield JSON.parse(data) as T;
    }
  }
}

export function registerEventCommands(program: Command, io: CliIo = defaultIo): void {
  const run = commandRunner(io);
  const events = program.command('events').description('connection events: why devices could or could not connect, and why they went away');

  withFilters(withConnection(events.command('list').description('stored connection events, newest first')
    .option('--limit <n>', 'at most this many (1-1000)', '50')))
    .action(run<FilterFlags & { limit: string }>(async (client, flags) => {
      const query = await filterQuery(client, flags);
      query.set('limit', flags.limit);
      const page = await client.request<{ items: EventView[]; nextCursor: string | null }>('GET', `/api/v1/events?${query.toString()}`);
      io.out(flags.json ? JSON.stringify(page, null, 2) : formatTable(HEADERS, page.items.map(row)));
    }));

  withFilters(withConnection(events.command('tail').description('the latest connection events, then new ones as they happen (Ctrl-C to stop)')
    .option('--lines <n>', 'how many stored events to print first (0-1000)', '10')
    .option('--exit-after <n>', 'stop after this many live events')))
    .action(run<FilterFlags & { lines: string; exitAfter?: string }>(async (client, flags) => {
      const query = await filterQuery(client, flags);
      const print = (e: EventView): void => io.out(flags.json ? JSON.stringify(e) : formatTable(HEADERS, [row(e)]).split('\n')[1] ?? '');
      const exitAfter = flags.exitAfter === undefined ? Infinity : Number(flags.exitAfter);
      if (!(exitAfter > 0)) throw new ApiError(0, 'CLI_EXIT_AFTER_INVALID', '--exit-after must be a positive number', 'exit-after');
      // The stream first, so nothing happens between the backlog and the live part unseen.
      const live = new URLSearchParams({ types: 'connection' });
      const gateway = query.get('gatewayId');
      if (gateway !== null) live.set('gatewayId', gateway);
      if (flags.device !== undefined) live.set('deviceName', flags.device);
      const abort = new AbortController();
      const body = await client.open(`/api/v1/stream?${live.toString()}`, abort.signal);
      const lines = Number(flags.lines);
      // Reading the backlog writes what the recorder still held, and those rows then go out live on the stream
      // opened above: an event printed from the backlog is not printed (or counted) again when it arrives live.
      const printed = new Set<string>();
      if (lines > 0) {
        query.set('limit', String(lines));
        const { items } = await client.request<{ items: EventView[] }>('GET', `/api/v1/events?${query.toString()}`);
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
        for await (const e of sse<EventView>(body, 'connection')) {
          if (!wanted(e, flags) || printed.has(e.id)) continue;
          print(e);
          if (++seen >= exitAfter) break;
        }
      } finally {
        abort.abort();
      }
    }));
}
