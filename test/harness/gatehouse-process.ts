/**
 * Gatehouse as `npm start` runs it: dist/main.mjs in a child process (plain node, no loader) on a
 * given data directory, so a test can kill -9 it, start it again on the same directory, or watch it
 * refuse to start. Only loopback: the API and gateways on 127.0.0.1 unless `env` names another loopback address.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { DIST, ensureBuilt, ROOT } from '../../scripts/build.mjs';
import { freePort, TEST_ADMIN_TOKEN } from './gatehouse.ts';

export interface GatehouseProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stdout: () => string;
  readonly stderr: () => string;
  api<T = unknown>(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; json: T }>;
  /** Resolves with the exit code (null after a signal). */
  readonly exited: Promise<number | null>;
  /** SIGKILL: no shutdown code runs. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * `fromSource`: src/main.ts through tsx instead of the bundle, for code that runs only in such a child (the
 * `GATEHOUSE_WORKERS` primary): the test suite's coverage counts src/ files, which the bundle's run does not reach.
 */
function spawnMain(dataDir: string, httpPort: number, env: Record<string, string>, fromSource = false): { child: ChildProcess; out: { stdout: string; stderr: string }; exited: Promise<number | null> } {
  const entry = fromSource ? ['--import', 'tsx', path.join(ROOT, 'src', 'main.ts')] : ['--enable-source-maps', path.join(DIST, 'main.mjs')];
  const child = spawn(process.execPath, ['--no-node-snapshot', ...entry], {
    env: {
      ...process.env, GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_HTTP_PORT: String(httpPort), GATEHOUSE_HTTP_HOST: '127.0.0.1',
      GATEHOUSE_MQTT_HOST: '127.0.0.1', GATEHOUSE_PUBLIC_HOST: 'localhost', GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      GATEHOUSE_DEMO: 'off', GATEHOUSE_LOG_LEVEL: 'warn', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exited };
}

/** Starts dist/main.mjs and resolves once it says it is running. */
export async function startGatehouseProcess(dataDir: string, env: Record<string, string> = {}, options: { fromSource?: boolean } = {}): Promise<GatehouseProcess> {
  await ensureBuilt();
  const httpPort = await freePort();
  const { child, out, exited } = spawnMain(dataDir, httpPort, env, options.fromSource);
  await new Promise<void>((resolve, reject) => {
    const onData = (): void => {
      if (out.stdout.includes('Gatehouse is running')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`dist/main.mjs exited ${code} before it was running: ${out.stderr}${out.stdout}`)));
  });
  // A cluster test gives each node its own loopback address (GATEHOUSE_HTTP_HOST=127.0.0.2, …).
  const url = `http://${env.GATEHOUSE_HTTP_HOST ?? '127.0.0.1'}:${httpPort}`;
  return {
    child, url, exited,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    async api<T>(method: string, urlPath: string, body?: unknown, contentType = 'application/json') {
      const res = await fetch(`${url}/api/v1${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: (text.length > 0 ? JSON.parse(text) : undefined) as T };
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs dist/main.mjs expecting it to refuse to start: its exit code and what it printed. */
export async function runGatehouseExpectingExit(dataDir: string, env: Record<string, string> = {}, ms = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  await ensureBuilt();
  const { child, out, exited } = spawnMain(dataDir, await freePort(), env);
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const code = await exited;
  clearTimeout(timer);
  return { code, stdout: out.stdout, stderr: out.stderr };
}
