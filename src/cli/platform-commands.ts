/**
 * `gatehouse functions …`, `gatehouse messages …` and `gatehouse webhooks …`: verification functions,
 * device data up and down, and event delivery, from a shell (issue 14 item 7). Same conventions as the
 * gateway and device commands: `--url` / `--token` / `--json`, API errors as `error: CODE: message (field)`
 * with exit status 1, deletions asked first (`--yes` skips; no terminal means refused without it).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  ApiError, ok, type ApiClient, type FunctionPut, type MessageQuery, type VerificationFunction, type Webhook, type WebhookCreate, type WebhookUpdate,
} from '../client/index.ts';
import { commandRunner, defaultIo, findGateway, formatTable, productKeyOf, withConnection, type CliIo, type ConnectionFlags } from './admin-commands.ts';

function readFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ApiError(0, 'CLI_FILE_UNREADABLE', `cannot read ${what} ${file}: ${(error as Error).message}`, null);
  }
}

function whole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new ApiError(0, 'CLI_NUMBER_INVALID', `${flag} must be a whole number, not ${value}`, flag.slice(2));
  return Number(value);
}

/** What an operator reads of a payload: its text when it is printable UTF-8, else base64 (marked). */
export function payloadText(base64: string, max = 60): string {
  const bytes = Buffer.from(base64, 'base64');
  const text = bytes.toString('utf8');
  // eslint-disable-next-line no-control-regex -- control characters are what make a payload binary
  const printable = Buffer.from(text, 'utf8').equals(bytes) && !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text);
  const shown = printable ? text : `base64:${base64}`;
  return shown.length > max ? `${shown.slice(0, max - 1)}…` : shown;
}

/**
 * The downlink body's payload from exactly one `messages send` flag, written as given: the server's decoder
 * (api/payload.ts) checks hex and base64, so the CLI and the console refuse the same inputs with the same code.
 */
export function payloadFromFlags(flags: { text?: string; hex?: string; base64?: string; file?: string }): { payload: string; encoding: 'text' | 'hex' | 'base64' } {
  const given = (['text', 'hex', 'base64', 'file'] as const).filter((k) => flags[k] !== undefined);
  if (given.length !== 1) {
    throw new ApiError(0, 'CLI_PAYLOAD_REQUIRED', `give the payload once: --text, --hex, --base64 or --file (got ${given.length === 0 ? 'none' : given.map((k) => `--${k}`).join(', ')})`, 'payload');
  }
  if (flags.text !== undefined) return { payload: flags.text, encoding: 'text' };
  if (flags.hex !== undefined) return { payload: flags.hex, encoding: 'hex' };
  if (flags.base64 !== undefined) return { payload: flags.base64, encoding: 'base64' };
  return { payload: readFile(flags.file!, 'payload file').toString('base64'), encoding: 'base64' };
}

/**
 * Asks before a deletion; throws when there is no terminal and no --yes, returns false when the operator
 * said no (the caller prints nothing more).
 */
async function confirmed(io: CliIo, yes: boolean | undefined, question: string, what: string): Promise<boolean> {
  if (yes === true) return true;
  const answer = await io.ask?.(`${question} [y/N] `) ?? null;
  if (answer === null) throw new ApiError(0, 'CLI_CONFIRMATION_REQUIRED', `deleting ${what} needs --yes when there is no terminal to ask`, 'yes');
  if (/^y(es)?$/i.test(answer.trim())) return true;
  io.err(`not deleted: ${what}`);
  io.setExitCode(1);
  return false;
}

export function registerPlatformCommands(program: Command, io: CliIo = defaultIo): void {
  const run = commandRunner(io);
  const print = (flags: ConnectionFlags, value: unknown, text: () => string): void => {
    io.out(flags.json ? JSON.stringify(value, null, 2) : text());
  };

  // ---- functions ------------------------------------------------------------------------------
  const functions = program.command('functions').description('verification functions: list, show, store, try and delete');
  const functionTable = (items: VerificationFunction[]): string =>
    formatTable(['NAME', 'TIMEOUT MS', 'MEMORY MB', 'UPDATED'], items.map((f) => [f.name, f.timeoutMs, f.memoryMb, f.updatedAt]));

  withConnection(functions.command('list').description('list verification functions'))
    .action(run(async (client, flags) => {
      const answer = await ok(client.GET('/api/v1/functions'));
      print(flags, answer, () => functionTable(answer.items));
    }));

  withConnection(functions.command('get <name>').description('show a function and its source'))
    .action(run(async (client, flags, [name = '']) => {
      const fn = await ok(client.GET('/api/v1/functions/{name}', { params: { path: { name } } }));
      print(flags, fn, () => `${functionTable([fn])}\n\n${fn.source}`);
    }));

  withConnection(functions.command('put <name> <file.js>').description('store a function from a file: created, or replaced with its gateways using the new source at once')
    .option('--timeout <ms>', 'time limit per call, 10-30000 (default 5000)')
    .option('--memory <mb>', 'memory limit, 8-256 (default 64)'))
    .action(run<ConnectionFlags & { timeout?: string; memory?: string }>(async (client, flags, [name = '', file = '']) => {
      const body: FunctionPut = { source: readFile(file, 'function source').toString('utf8') };
      const timeoutMs = whole(flags.timeout, '--timeout');
      const memoryMb = whole(flags.memory, '--memory');
      if (timeoutMs !== undefined) body.timeoutMs = timeoutMs;
      if (memoryMb !== undefined) body.memoryMb = memoryMb;
      const fn = await ok(client.PUT('/api/v1/functions/{name}', { params: { path: { name } }, body }));
      print(flags, fn, () => functionTable([fn]));
    }));

  withConnection(functions.command('invoke <name>').description('run a function on the input a CONNECT would give it, and show what that CONNECT would get')
    .option('--username <name>', 'the MQTT user name (none when absent)')
    .option('--password <text>', 'the MQTT password (none when absent)')
    .option('--client-id <id>', 'the MQTT client identifier (default "")')
    .option('--cn <name>', 'the client certificate\'s common name, as with X.509 on'))
    .action(run<ConnectionFlags & { username?: string; password?: string; clientId?: string; cn?: string }>(async (client, flags, [name = '']) => {
      const answer = await ok(client.POST('/api/v1/functions/{name}/invoke', {
        params: { path: { name } },
        body: {
          userName: flags.username ?? null, password: flags.password ?? null, clientId: flags.clientId ?? '',
          certificateCommonName: flags.cn ?? null,
        },
      }));
      const d = answer.decision;
      print(flags, answer, () => [
        `${d.result}${d.deviceName === null ? '' : ` as ${d.deviceName}`}${d.reason === null ? '' : ` (${d.reason}${d.message === null ? '' : `: ${d.message}`})`}`,
        answer.error === null ? `output: ${JSON.stringify(answer.output)}` : `error: ${answer.error.kind}: ${answer.error.message}`,
        ...answer.logs.map((l) => `${l.level}: ${l.message}`),
        `took ${answer.durationMs} ms`,
      ].join('\n'));
      // A script that failed is an error of the command; a clean refusal is an answer like any other.
      if (answer.error !== null) io.setExitCode(1);
    }));

  withConnection(functions.command('delete <name>').description('delete a function (refused while a gateway uses it); asks first')
    .option('--yes', 'delete without asking (scripts)'))
    .action(run<ConnectionFlags & { yes?: boolean }>(async (client, flags, [name = '']) => {
      await ok(client.GET('/api/v1/functions/{name}', { params: { path: { name } } })); // 404 before asking
      if (!await confirmed(io, flags.yes, `Delete function ${name}?`, `function ${name}`)) return;
      await ok(client.DELETE('/api/v1/functions/{name}', { params: { path: { name } } }));
      print(flags, { deleted: name }, () => `deleted function ${name}`);
    }));

  // ---- messages -------------------------------------------------------------------------------
  const messages = program.command('messages').description('device data: recent uplinks, and messages sent down to a device');

  withConnection(messages.command('list').description('stored uplinks, newest first')
    .option('--gateway <gateway>', 'only this gateway (name or id)')
    .option('--product <key>', 'only this product')
    .option('--device <name>', 'only this device')
    .option('--since <iso>', 'received at or after (ISO 8601)')
    .option('--parse-failed', 'only messages whose parsing failed')
    .option('--limit <n>', '1-1000 (default 100)'))
    .action(run<ConnectionFlags & { gateway?: string; product?: string; device?: string; since?: string; parseFailed?: boolean; limit?: string }>(
      async (client, flags) => {
        const query: MessageQuery = {
          productKey: flags.product, deviceName: flags.device, since: flags.since, limit: whole(flags.limit, '--limit'),
        };
        if (flags.gateway !== undefined) query.gatewayId = (await findGateway(client, flags.gateway)).id;
        if (flags.parseFailed === true) query.parseFailed = true;
        const answer = await ok(client.GET('/api/v1/messages', { params: { query } }));
        print(flags, answer, () => formatTable(['RECEIVED', 'DEVICE', 'TOPIC', 'QOS', 'PAYLOAD', 'PARSED'], answer.items.map((m) => [
          m.receivedAt, m.deviceName, m.topic, m.qos, payloadText(m.payload),
          m.parseError !== null ? `error: ${m.parseError}` : m.parsed === null ? null : JSON.stringify(m.parsed).slice(0, 60),
        ])));
      }));

  withConnection(messages.command('send <product> <device> <topic>').description('send a message down to a connected device (product: its key, or its gateway\'s name or id)')
    .option('--text <text>', 'the payload as UTF-8 text')
    .option('--hex <hex>', 'the payload as hex bytes')
    .option('--base64 <b64>', 'the payload as base64')
    .option('--file <file>', 'the payload: a file\'s bytes')
    .option('--qos <0|1>', 'QoS 0 (default) or 1: wait for the device\'s PUBACK'))
    .action(run<ConnectionFlags & { text?: string; hex?: string; base64?: string; file?: string; qos?: string }>(
      async (client, flags, [product = '', device = '', topic = '']) => {
        const body = payloadFromFlags(flags);
        if (flags.qos !== undefined && flags.qos !== '0' && flags.qos !== '1') throw new ApiError(0, 'CLI_QOS_INVALID', '--qos must be 0 or 1', 'qos');
        const productKey = await productKeyOf(client, product);
        const answer = await ok(client.POST('/api/v1/products/{productKey}/devices/{deviceName}/messages', {
          params: { path: { productKey, deviceName: device } },
          body: { topic, ...body, qos: flags.qos === '1' ? 1 : 0 },
        }));
        const refusal = answer.reasonCode === undefined ? '' : ` (reason code 0x${answer.reasonCode.toString(16)})`;
        print(flags, answer, () => `${answer.result}${refusal}: to ${device} on ${topic}`);
        // Not delivered (offline, not subscribed, refused, no PUBACK in time): a script must be able to tell.
        if (answer.result !== 'SENT' && answer.result !== 'ACKED') io.setExitCode(1);
      }));

  // ---- webhooks -------------------------------------------------------------------------------
  const webhooks = program.command('webhooks').description('event delivery to your HTTPS endpoints: create, list, change, delete, dead letters');
  const webhookTable = (items: Webhook[]): string => formatTable(['ID', 'URL', 'GATEWAY', 'EVENTS', 'ENABLED', 'DELIVERED', 'DEAD'],
    items.map((w) => [w.id, w.url, w.gatewayId ?? 'all', w.eventTypes.join(','), w.enabled ? 'yes' : 'no', w.delivery?.delivered, w.delivery?.deadLettered]));
  const withWebhookFlags = (command: Command): Command => command
    .option('--endpoint <https-url>', 'where events are POSTed (https:// only; --url is the Gatehouse API\'s address)')
    .option('--gateway <gateway>', 'only this gateway\'s events (name or id); "all" for every gateway')
    .option('--events <types>', 'comma-separated: message, online, offline (default all three)')
    .option('--description <text>', 'a note for operators (up to 200 characters)')
    .option('--secret <text>', 'HMAC key, 16-128 printable characters (generated when absent at create)')
    .option('--ca <file.pem>', 'a private CA trusted besides the system roots')
    .option('--enable', 'deliver events')
    .option('--disable', 'keep the webhook but deliver nothing');
  type WebhookFlags = ConnectionFlags & {
    endpoint?: string; gateway?: string; events?: string; description?: string; secret?: string; ca?: string; enable?: boolean; disable?: boolean;
  };
  const webhookBody = async (client: ApiClient, flags: WebhookFlags): Promise<WebhookUpdate> => {
    const body: WebhookUpdate = {};
    if (flags.endpoint !== undefined) body.url = flags.endpoint;
    if (flags.gateway !== undefined) body.gatewayId = flags.gateway === 'all' ? null : (await findGateway(client, flags.gateway)).id;
    // As typed: the server names a type it does not know (GW_ERR_VALIDATION, eventTypes[i]).
    if (flags.events !== undefined) body.eventTypes = flags.events.split(',').map((t) => t.trim()).filter((t) => t !== '') as WebhookUpdate['eventTypes'];
    if (flags.description !== undefined) body.description = flags.description;
    if (flags.secret !== undefined) body.secret = flags.secret;
    if (flags.ca !== undefined) body.caCertificate = readFile(flags.ca, 'CA certificate').toString('utf8');
    if (flags.enable === true && flags.disable === true) throw new ApiError(0, 'CLI_FLAGS_CONFLICT', 'give --enable or --disable, not both', 'enabled');
    if (flags.enable === true) body.enabled = true;
    if (flags.disable === true) body.enabled = false;
    return body;
  };
  const showSecret = (flags: ConnectionFlags, w: Webhook): void => {
    // The secret is shown once, in the answer that set it: on stderr, so a table on stdout stays a table.
    if (!flags.json && w.secret !== undefined) io.err(`signing secret (shown once, keep it): ${w.secret}`);
  };

  withConnection(webhooks.command('list').description('list webhooks with their delivery counts'))
    .action(run(async (client, flags) => {
      const answer = await ok(client.GET('/api/v1/webhooks'));
      print(flags, answer, () => webhookTable(answer.items));
    }));

  withWebhookFlags(withConnection(webhooks.command('create').description('create a webhook (--endpoint required)')))
    .action(run<WebhookFlags>(async (client, flags) => {
      if (flags.endpoint === undefined) throw new ApiError(0, 'CLI_ENDPOINT_REQUIRED', 'webhooks create needs --endpoint https://…', 'url');
      const w = await ok(client.POST('/api/v1/webhooks', { body: { ...await webhookBody(client, flags), url: flags.endpoint } satisfies WebhookCreate }));
      print(flags, w, () => webhookTable([w]));
      showSecret(flags, w);
    }));

  withWebhookFlags(withConnection(webhooks.command('update <id>').description('change a webhook; only the given fields change')))
    .action(run<WebhookFlags>(async (client, flags, [id = '']) => {
      const w = await ok(client.PATCH('/api/v1/webhooks/{id}', { params: { path: { id } }, body: await webhookBody(client, flags) }));
      print(flags, w, () => webhookTable([w]));
      showSecret(flags, w);
    }));

  withConnection(webhooks.command('delete <id>').description('delete a webhook with its queue and dead letters; asks first')
    .option('--yes', 'delete without asking (scripts)'))
    .action(run<ConnectionFlags & { yes?: boolean }>(async (client, flags, [id = '']) => {
      const w = await ok(client.GET('/api/v1/webhooks/{id}', { params: { path: { id } } })); // 404 before asking
      if (!await confirmed(io, flags.yes, `Delete webhook ${id} (${w.url})?`, `webhook ${id}`)) return;
      await ok(client.DELETE('/api/v1/webhooks/{id}', { params: { path: { id } } }));
      print(flags, { deleted: id }, () => `deleted webhook ${id}`);
    }));

  withConnection(webhooks.command('dead-letters <id>').description('deliveries that failed every attempt, newest first')
    .option('--limit <n>', '1-1000 (default 100)'))
    .action(run<ConnectionFlags & { limit?: string }>(async (client, flags, [id = '']) => {
      const limit = whole(flags.limit, '--limit');
      const answer = await ok(client.GET('/api/v1/webhooks/{id}/dead-letters', { params: { path: { id }, query: { limit } } }));
      print(flags, answer, () => formatTable(['ID', 'EVENT', 'ATTEMPTS', 'FAILED AT', 'LAST ERROR'],
        answer.items.map((d) => [d.id, d.eventId, d.attempts, d.failedAt, d.lastError])));
    }));
}
