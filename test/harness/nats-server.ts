/**
 * A private nats-server for a test that stops and restarts it (a NATS outage), on a free port of
 * 127.0.0.1 with its own JetStream store, so the shared server of GATEHOUSE_TEST_NATS_URL is not disturbed.
 * The same port and store across restarts: what a restarted server would keep, it keeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './gatehouse.ts';

export interface PrivateNatsServer {
  readonly url: string;
  /** Starts it (again) and resolves once it accepts connections. */
  start(): Promise<void>;
  /** SIGTERM (or `signal`: SIGKILL for a crash), and resolves once it exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Empties its store (stopped first): started again, it is a NATS server that lost its disk. */
  wipe(): Promise<void>;
  /** Stops it and removes its store. */
  dispose(): Promise<void>;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function privateNatsServer(): Promise<PrivateNatsServer> {
  const port = await freePort();
  const store = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-nats-'));
  let server: ChildProcess | null = null;
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const running = server;
    server = null;
    if (running === null || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    async start() {
      if (server !== null) return;
      const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store], { stdio: 'ignore' });
      server = child;
      const deadline = Date.now() + 15_000;
      while (!(await accepts(port))) {
        if (child.exitCode !== null) throw new Error(`nats-server exited ${child.exitCode} (is it installed? test/cluster/README.md)`);
        if (Date.now() > deadline) throw new Error('nats-server did not listen within 15 s');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    stop: (signal) => stop(signal),
    async wipe() {
      await stop('SIGKILL');
      await rm(store, { recursive: true, force: true });
    },
    async dispose() {
      await stop();
      await rm(store, { recursive: true, force: true });
    },
  };
}
