/**
 * `gatehouse gateways …` and `gatehouse devices …`: the REST API from a shell, for people who script
 * their fleet. Every command takes `--url` (GATEHOUSE_URL, default http://127.0.0.1:8080), `--token`
 * (GATEHOUSE_ADMIN_TOKEN) and `--json` (print the API's answer as is instead of a table).
 * Exit status 1 on any error, and when a start ends in ERROR or an import has failed rows.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  allItems, ApiError, createApiClient, ok, type ApiClient, type Device, type Gateway, type GatewayCreate, type GatewayListItem,
} from '../client/index.ts';
import { PER_DEVICE_TEMPLATE } from '../registry/access-control.ts';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  setExitCode: (code: number) => void;
  /** Asks the operator a question on the terminal; null when there is none to ask (a script, a pipe). */
  ask?: (question: string) => Promise<string | null>;
}

export const defaultIo: CliIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
  setExitCode: (code) => {
    process.exitCode = code;
  },
  ask: async (question) => {
    if (!process.stdin.isTTY) return null;
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return await rl.question(question);
    } finally {
      rl.close();
    }
  },
};

/**
 * The API client of the CLI: the one the console uses too (src/client/), typed by the route schemas; a server
 * that does not answer is `CLI_UNREACHABLE` naming the address tried.
 */
export function cliClient(baseUrl: string, token: string | undefined): ApiClient {
  return createApiClient({
    baseUrl,
    token: () => token,
    unreachable: (cause) => new ApiError(0, 'CLI_UNREACHABLE', `cannot reach ${baseUrl}: ${cause}`, null),
  });
}

/**
 * A gateway named by its id or its name (ids first: a name never shadows an id). The CLI takes either
 * wherever it takes a gateway.
 */
export async function findGateway(client: ApiClient, nameOrId: string): Promise<GatewayListItem> {
  const { items } = await ok(client.GET('/api/v1/gateways'));
  const found = items.find((g) => g.id === nameOrId) ?? items.find((g) => g.name === nameOrId);
  if (found === undefined) throw new ApiError(404, 'GW_ERR_GATEWAY_NOT_FOUND', `no gateway with the id or name ${nameOrId}`, 'gateway');
  return found;
}

/** A product by its key, or by its gateway's name or id (a product belongs to one gateway). */
export async function productKeyOf(client: ApiClient, productOrGateway: string): Promise<string> {
  const { items } = await ok(client.GET('/api/v1/gateways'));
  const gateway = items.find((g) => g.productKey === productOrGateway) ?? items.find((g) => g.id === productOrGateway) ?? items.find((g) => g.name === productOrGateway);
  return gateway?.productKey ?? productOrGateway;
}

export interface ConnectionFlags {
  url?: string;
  token?: string;
  json?: boolean;
}

/** The API address: --url, GATEHOUSE_URL, or the server's own GATEHOUSE_HTTP_HOST / _PORT (a wildcard bind reached on loopback). */
export function apiUrl(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined) return flag;
  if (env.GATEHOUSE_URL !== undefined && env.GATEHOUSE_URL !== '') return env.GATEHOUSE_URL;
  const bound = env.GATEHOUSE_HTTP_HOST === undefined || env.GATEHOUSE_HTTP_HOST === '' ? '127.0.0.1' : env.GATEHOUSE_HTTP_HOST;
  const host = bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '[::1]' : bound.includes(':') && !bound.startsWith('[') ? `[${bound}]` : bound;
  const port = env.GATEHOUSE_HTTP_PORT === undefined || env.GATEHOUSE_HTTP_PORT === '' ? '8080' : env.GATEHOUSE_HTTP_PORT;
  return `http://${host}:${port}`;
}

/** Left-aligned columns, a header row, two spaces between columns. */
export function formatTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((row) => row.map((cell) => (cell === null || cell === undefined || cell === '' ? '-' : String(cell))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ApiError(0, 'CLI_FILE_UNREADABLE', `cannot read ${what} ${file}: ${(error as Error).message}`, null);
  }
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ApiError(0, 'CLI_FILE_UNREADABLE', `cannot read ${what} ${file}: ${(error as Error).message}`, null);
  }
}

export function withConnection(command: Command): Command {
  return command
    .option('--url <url>', 'Gatehouse API address (default GATEHOUSE_URL, else http://GATEHOUSE_HTTP_HOST:GATEHOUSE_HTTP_PORT, else http://127.0.0.1:8080)')
    .option('--token <token>', 'admin token (GATEHOUSE_ADMIN_TOKEN)')
    .option('--json', 'print the API answer as JSON');
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Flags shared by `gateways create` and `gateways update`; each maps onto one request field. */
function withGatewayFlags(command: Command): Command {
  return command
    .option('--file <gateway.json>', 'request body as JSON (the flags below override its fields)')
    .option('--name <name>', 'gateway name: 4-30 of A-Z a-z 0-9 _')
    .option('--port <port>', 'listener port 1024-65535 (default 1883)')
    .option('--cert <chain.pem>', 'server certificate chain, leaf first')
    .option('--key <key.pem>', 'private key of the server certificate')
    .option('--device-roots <roots.pem>', 'CA certificates for X.509 device verification')
    .option('--trusted <root.pem>', 'server root certificate (for server OCSP)')
    .option('--x509', 'verify device certificates')
    .option('--no-x509', 'do not verify device certificates')
    .option('--ocsp <mode>', 'DISABLED | SERVER | CLIENT | SERVER_AND_CLIENT')
    .option('--auth <type>', 'ONE_PARTY | THIRD_PARTY')
    .option('--function <name>', 'third party: verify with this stored function')
    .option('--https-url <url>', 'third party: verify with this https:// service')
    .option('--param <key=value>', 'third party HTTPS: a custom body field (repeatable; value may use ${clientId} …)', collect)
    .option('--parsing-script <file.js>', 'enable data parsing with this transformPayload script')
    .option('--no-parsing', 'disable data parsing')
    .option('--acl-template <name>', 'topic access control: per-device (each device only under devices/${deviceName}/) or open (ALLOW, no rules)')
    .option('--acl-default <action>', 'topic access control: ALLOW | DENY when no rule applies')
    .option('--acl-rule <ACTION:ACCESS:topic>', 'topic access rule, e.g. ALLOW:ALL:devices/${deviceName}/# (repeatable, in order; replaces the rules)', collect)
    .option('--limit <name=value>', 'a gateway limit, e.g. maxConnections=500 or messagesPerSecondPerDevice=none (repeatable; others unchanged)', collect);
}

interface GatewayFlags extends ConnectionFlags {
  file?: string;
  name?: string;
  port?: string;
  cert?: string;
  key?: string;
  deviceRoots?: string;
  trusted?: string;
  x509?: boolean;
  ocsp?: string;
  auth?: string;
  function?: string;
  httpsUrl?: string;
  param?: string[];
  parsingScript?: string;
  parsing?: boolean;
  aclTemplate?: string;
  aclDefault?: string;
  aclRule?: string[];
  limit?: string[];
}

/** The request body the flags describe: `--file` first, then each flag given. */
export function gatewayBodyFromFlags(flags: GatewayFlags): Record<string, unknown> {
  const body: Record<string, unknown> = flags.file ? (JSON.parse(readText(flags.file, 'gateway file')) as Record<string, unknown>) : {};
  const nested = (key: string): Record<string, unknown> => (body[key] = { ...(body[key] as Record<string, unknown> | undefined) });
  if (flags.name !== undefined) body.name = flags.name;
  if (flags.port !== undefined) body.port = Number(flags.port);
  if (flags.cert !== undefined) nested('certificates').serverCertificateChain = readText(flags.cert, 'certificate chain');
  if (flags.key !== undefined) nested('certificates').serverPrivateKey = readText(flags.key, 'private key');
  if (flags.deviceRoots !== undefined) nested('certificates').deviceRootCertificates = readText(flags.deviceRoots, 'device roots');
  if (flags.trusted !== undefined) nested('certificates').trustedCertificate = readText(flags.trusted, 'trusted certificate');
  if (flags.x509 !== undefined) nested('x509').enabled = flags.x509;
  if (flags.ocsp !== undefined) nested('ocsp').mode = flags.ocsp;
  if (flags.auth !== undefined) body.authType = flags.auth;
  if (flags.function !== undefined) {
    body.authType ??= 'THIRD_PARTY';
    body.thirdParty = { provider: 'FUNCTION', functionName: flags.function };
  }
  if (flags.httpsUrl !== undefined || flags.param !== undefined) {
    body.authType ??= 'THIRD_PARTY';
    const params = (flags.param ?? []).map((pair) => {
      const at = pair.indexOf('=');
      return at === -1 ? { key: pair, value: '' } : { key: pair.slice(0, at), value: pair.slice(at + 1) };
    });
    const current = (body.thirdParty as Record<string, unknown> | undefined) ?? {};
    body.thirdParty = { ...current, provider: 'HTTPS', ...(flags.httpsUrl !== undefined ? { url: flags.httpsUrl } : {}), ...(flags.param ? { params } : {}) };
  }
  if (flags.parsingScript !== undefined) Object.assign(nested('dataParsing'), { enabled: true, script: readText(flags.parsingScript, 'parsing script') });
  else if (flags.parsing === false) nested('dataParsing').enabled = false;
  if (flags.aclTemplate !== undefined) {
    const templates: Record<string, unknown> = { 'per-device': PER_DEVICE_TEMPLATE, open: { defaultAction: 'ALLOW', rules: [] } };
    const template = templates[flags.aclTemplate];
    if (template === undefined) throw new ApiError(0, 'CLI_ACL_TEMPLATE_UNKNOWN', `--acl-template must be per-device or open, not ${flags.aclTemplate}`, 'accessControl');
    body.accessControl = structuredClone(template);
  }
  if (flags.aclDefault !== undefined) nested('accessControl').defaultAction = flags.aclDefault;
  if (flags.aclRule !== undefined) {
    // ACTION:ACCESS:topic; the topic may hold ':' itself. The server checks every part.
    nested('accessControl').rules = flags.aclRule.map((spec) => {
      const [action = '', access = '', ...topic] = spec.split(':');
      return { action, access, topic: topic.join(':') };
    });
  }
  for (const spec of flags.limit ?? []) {
    // name=value; "none" (or "null") lifts the limit. The server checks names and ranges.
    const at = spec.indexOf('=');
    const name = at < 0 ? spec : spec.slice(0, at);
    const text = at < 0 ? '' : spec.slice(at + 1).trim();
    const value = text === 'none' || text === 'null' ? null : Number(text);
    if (value !== null && (text === '' || Number.isNaN(value))) {
      throw new ApiError(0, 'CLI_LIMIT_INVALID', `--limit ${spec}: write name=<number> or name=none`, `limits.${name}`);
    }
    nested('limits')[name] = value;
  }
  return body;
}

/** How often `devices import` asks for its operation's progress, and tells it on stderr. */
const IMPORT_POLL_MS = 500;
const IMPORT_PROGRESS_EVERY_MS = 5000;

function gatewayTable(gateways: GatewayListItem[]): string {
  return formatTable(['ID', 'NAME', 'PORT', 'STATUS', 'CLIENTS', 'URL', 'PRODUCT KEY'],
    gateways.map((g) => [g.id, g.name, g.port, g.status === 'ERROR' ? `ERROR (${g.statusReason ?? '?'})` : g.status, g.connectedClients, g.url, g.productKey]));
}

/**
 * Wraps a command body: a client for the API address and token, API errors printed as
 * `error: CODE: message (field)` with exit status 1.
 */
export function commandRunner(io: CliIo) {
  // Commander calls actions with (…positional arguments, options, command).
  return <F extends ConnectionFlags>(body: (client: ApiClient, flags: F, positional: string[]) => Promise<void>) => async (...args: unknown[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const flags = command.opts<F>();
    const positional = args.slice(0, -2) as string[];
    const client = cliClient(apiUrl(flags.url, io.env), flags.token ?? io.env.GATEHOUSE_ADMIN_TOKEN);
    try {
      await body(client, flags, positional);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      io.err(`error: ${error.code}: ${error.message}${error.field ? ` (${error.field})` : ''}`);
      if (error.status === 401) io.err('hint: pass --token or set GATEHOUSE_ADMIN_TOKEN (printed at first start, kept in <data dir>/admin-token)');
      io.setExitCode(1);
    }
  };
}

export function registerAdminCommands(program: Command, io: CliIo = defaultIo): void {
  const run = commandRunner(io);
  const print = (flags: ConnectionFlags, value: unknown, table: () => string): void => {
    io.out(flags.json ? JSON.stringify(value, null, 2) : table());
  };
  const showGateway = (flags: ConnectionFlags, gateway: Gateway): void => {
    print(flags, gateway, () => gatewayTable([gateway]));
    if (!flags.json) for (const warning of gateway.warnings) io.err(`warning: ${warning.code}: ${warning.message}`);
    if (gateway.status === 'ERROR') io.setExitCode(1);
  };

  const gateways = program.command('gateways').description('create, list, edit, start and stop gateways');

  withConnection(gateways.command('list').description('list gateways'))
    .action(run(async (client, flags) => {
      const { items } = await ok(client.GET('/api/v1/gateways'));
      print(flags, { items }, () => gatewayTable(items));
    }));

  withConnection(gateways.command('get <gateway>').description('show one gateway, by name or id (JSON with --json)'))
    .action(run(async (client, flags, [gateway = '']) => {
      const { id } = await findGateway(client, gateway);
      showGateway(flags, await ok(client.GET('/api/v1/gateways/{id}', { params: { path: { id } } })));
    }));

  withGatewayFlags(withConnection(gateways.command('create').description('create a gateway (and its product) and start it')))
    .action(run<GatewayFlags>(async (client, flags) => {
      // What the flags and the file say, unchecked here: the server checks every field and names the one at fault.
      showGateway(flags, await ok(client.POST('/api/v1/gateways', { body: gatewayBodyFromFlags(flags) as GatewayCreate })));
    }));

  withGatewayFlags(withConnection(gateways.command('update <gateway>').description('change a gateway (by name or id); only the given fields change, live')))
    .action(run<GatewayFlags>(async (client, flags, [gateway = '']) => {
      const { id } = await findGateway(client, gateway);
      showGateway(flags, await ok(client.PATCH('/api/v1/gateways/{id}', { params: { path: { id } }, body: gatewayBodyFromFlags(flags) })));
    }));

  withConnection(gateways.command('delete <gateway>').description('delete a gateway (by name or id) with its product and devices; asks first')
    .option('--yes', 'delete without asking (scripts)'))
    .action(run<ConnectionFlags & { yes?: boolean }>(async (client, flags, [gateway = '']) => {
      const { id, name, productKey } = await findGateway(client, gateway);
      if (flags.yes !== true) {
        const { total } = await ok(client.GET('/api/v1/products/{productKey}/devices', { params: { path: { productKey }, query: { limit: 1 } } }));
        const answer = await io.ask?.(`Delete gateway ${name} (${id}) with its product and ${total} device${total === 1 ? '' : 's'}? [y/N] `) ?? null;
        if (answer === null) throw new ApiError(0, 'CLI_CONFIRMATION_REQUIRED', `deleting gateway ${name} with ${total} devices needs --yes when there is no terminal to ask`, 'yes');
        if (!/^y(es)?$/i.test(answer.trim())) {
          io.err(`not deleted: ${name}`);
          io.setExitCode(1);
          return;
        }
      }
      await ok(client.DELETE('/api/v1/gateways/{id}', { params: { path: { id } } }));
      print(flags, { deleted: id, name }, () => `deleted ${name} (${id})`);
    }));

  for (const action of ['start', 'stop'] as const) {
    withConnection(gateways.command(`${action} <gateway>`).description(action === 'start' ? 'turn the listener on (gateway by name or id)' : 'turn the listener off (gateway by name or id)'))
      .action(run(async (client, flags, [gateway = '']) => {
        const { id } = await findGateway(client, gateway);
        const path = action === 'start' ? '/api/v1/gateways/{id}/start' : '/api/v1/gateways/{id}/stop';
        showGateway(flags, await ok(client.POST(path, { params: { path: { id } } })));
      }));
  }

  const devices = program.command('devices').description('import and list the devices of a product');

  withConnection(devices.command('import <product> <file>').description('import up to 100,000 one-party rows (product: its key, or its gateway\'s name or id): CSV sn,username,password (header optional) or a .json array; progress on stderr')
    .option('--charset <name>', 'the CSV\'s encoding when it is not UTF-8 (iso-8859-1, windows-1252, utf-16le …)'))
    .action(run(async (client, flags, [product = '', file = '']) => {
      const productKey = await productKeyOf(client, product);
      const charset = (flags as { charset?: string }).charset;
      // An import operation: the server answers at once and imports in the background; its progress is polled.
      const started = file.toLowerCase().endsWith('.json')
        ? client.POST('/api/v1/products/{productKey}/imports', { params: { path: { productKey } }, body: JSON.parse(readText(file, 'import file')) as unknown[] })
        : client.POST('/api/v1/products/{productKey}/imports', {
          params: { path: { productKey } },
          // The file's bytes as they are: the server detects the encoding (or is told it). The schema can only call them a string.
          body: new Blob([new Uint8Array(readBytes(file, 'import file'))]) as unknown as string,
          bodySerializer: (bytes) => bytes,
          headers: { 'content-type': charset === undefined ? 'text/csv' : `text/csv; charset=${charset}` },
        });
      let operation = await ok(started);
      let toldAt = Date.now();
      while (operation.state === 'RUNNING') {
        await new Promise((resolve) => setTimeout(resolve, IMPORT_POLL_MS));
        operation = await ok(client.GET('/api/v1/products/{productKey}/imports/{importId}', { params: { path: { productKey, importId: operation.id } } }));
        if (Date.now() - toldAt >= IMPORT_PROGRESS_EVERY_MS) {
          toldAt = Date.now();
          io.err(`importing: ${operation.processed} of ${operation.total} rows, ${operation.created} created, ${operation.failed} failed`);
        }
      }
      if (operation.state === 'FAILED') {
        throw new ApiError(0, operation.error?.code ?? 'GW_ERR_INTERNAL', `the import stopped after ${operation.created} rows: ${operation.error?.message ?? 'unknown error'}`, operation.error?.field ?? null);
      }
      const done = operation;
      print(flags, done, () => [
        `${done.created} of ${done.total} rows imported, ${done.failed} failed`,
        ...(done.failures.length > 0 ? ['', formatTable(['ROW', 'CODE', 'FIELD', 'MESSAGE'], done.failures.map((r) => [r.row, r.error?.code, r.error?.field, r.error?.message]))] : []),
        ...(done.failuresOmitted > 0 ? [`… and ${done.failuresOmitted} more failed rows`] : []),
      ].join('\n'));
      if (done.failed > 0) io.setExitCode(1);
    }));

  withConnection(devices.command('list <product>').description('list the devices of a product (its key, or its gateway\'s name or id), a page at a time')
    .option('--limit <n>', 'at most this many (1-500)', '50')
    .option('--cursor <cursor>', 'the page after the one that printed this cursor')
    .option('--search <prefix>', 'devices whose name, username or SN starts with this')
    .option('--status <status>', 'online, offline, inactive or disabled')
    .option('--all', 'every page, one after the other (--limit is the page size)'))
    .action(run<ConnectionFlags & { limit: string; cursor?: string; search?: string; status?: string; all?: boolean }>(async (client, flags, [product = '']) => {
      const productKey = await productKeyOf(client, product);
      const page = (cursor: string | undefined) => ok(client.GET('/api/v1/products/{productKey}/devices', {
        params: { path: { productKey }, query: { limit: Number(flags.limit), cursor, search: flags.search, status: flags.status } },
      }));
      const table = (items: Device[]) => formatTable(['DEVICE NAME', 'USERNAME', 'SN', 'STATUS', 'LAST ONLINE', 'ADDRESS'],
        items.map((d) => [d.deviceName, d.username, d.sn, d.status, d.lastOnlineAt, d.clientAddress]));
      if (flags.all === true) {
        const items: Device[] = [];
        for await (const device of allItems(page)) items.push(device);
        print(flags, { items, total: items.length }, () => `${table(items)}\n${items.length} devices`);
        return;
      }
      const answer = await page(flags.cursor);
      print(flags, answer, () => [
        table(answer.items),
        `${answer.items.length} of ${answer.total} devices${answer.nextCursor === null ? '' : `; next page: --cursor ${answer.nextCursor}`}`,
      ].join('\n'));
    }));
}
