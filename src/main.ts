/**
 * `npm start`: reads the configuration, starts Gatehouse (API and console on one port, every enabled
 * gateway listening), and on a fresh install prints the admin token and a demo gateway to try.
 * With GATEHOUSE_WORKERS this process is the primary that starts and watches the workers (workers.ts), and
 * each worker runs this file again as a cluster node of its own.
 */
import { loadConfig, type PreparedConfig } from './config/index.ts';
import { GatehouseError } from './core/errors.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { exitAfterClose } from './core/exit-after-close.ts';
import { installProcessGuard } from './core/process-guard.ts';
import { readTestOverrides, startGatehouse, type Gatehouse, type GatehouseOverrides } from './app.ts';
import { seedDemoGateway } from './first-start.ts';
import { leaveWorkers, reportWorkerReady, runPrimary, workerConfig, workerIndex } from './workers.ts';

/** A refusal to start (bad configuration, a data directory that is not what it should be) is one clear line, not a stack. */
async function starting<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    // Any failure ends the start, with its reason: rethrown from here it reached the process guard as an
    // uncaught exception, which kept the process alive, half started (its gateways listening, no API) for ever.
    if (error instanceof GatehouseError) process.stderr.write(`gatehouse: ${error.code}: ${error.message}\n`);
    else process.stderr.write(`gatehouse: the start failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  }
}

// Everything Gatehouse creates is owner-only (data directory 0700, files 0600), whatever the shell's umask.
process.umask(0o077);
// Checked first: before any worker starts (a bad value is one line from the primary, not one per worker), and
// before the configuration prepares the data directory (a refused start leaves no generated secrets behind).
const testOverrides: GatehouseOverrides | undefined = await starting(() => Promise.resolve(readTestOverrides()));
const loaded: PreparedConfig = await starting(() => loadConfig());
const worker = workerIndex();
if (loaded.config.workers !== undefined && worker === null) {
  // The primary: it serves nothing itself, it starts the workers and watches them until they stop.
  const primaryLogger = createLogger(loaded.config.logLevel);
  installProcessGuard(primaryLogger);
  for (const warning of loaded.warnings) primaryLogger.warn({ warning }, 'config_warning');
  await runPrimary(loaded, primaryLogger, (lines) => process.stdout.write(`\n${lines.join('\n')}\n\n`));
} else {
  await serve(worker);
}

async function serve(worker: number | null): Promise<void> {
  const prepared: PreparedConfig = worker === null ? loaded : await workerConfig(loaded, worker);
  const { config } = prepared;
  // Every line of a worker says which one it is: the workers share one stdout.
  const logger: Logger = worker === null ? createLogger(config.logLevel) : createLogger(config.logLevel).child({ worker });
  installProcessGuard(logger);
  if (worker === null) for (const warning of prepared.warnings) logger.warn({ warning }, 'config_warning');
  // Test-only: an operator who set it by mistake runs with shortened timings and bounds, and should see why.
  if (testOverrides !== undefined) logger.warn({ overrides: testOverrides }, 'test_overrides_applied');

  // Signals are taken from here on: one that came while Gatehouse was still starting used to end the process
  // at once (Node's default), its SQLite files left with their write-ahead logs; now the start finishes,
  // then everything closes as for any stop.
  let started: Gatehouse | null = null;
  let stopSignal: string | null = null;
  const close = (gatehouse: Gatehouse): void => {
    gatehouse.close().then(
      () => logger.info('gatehouse_stopped'),
      (err: unknown) => {
        logger.error({ err }, 'gatehouse_stop_failed');
        process.exitCode = 1;
      },
    ).finally(() => {
      leaveWorkers();
      // Let the event loop empty instead of process.exit(), so every close finishes its writes — but not for ever.
      exitAfterClose(logger);
    });
  };
  const stop = (signal: string): void => {
    if (stopSignal !== null) return;
    stopSignal = signal;
    logger.info({ signal, starting: started === null }, 'gatehouse_stopping');
    if (started !== null) close(started);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));

  const gatehouse: Gatehouse = await starting(() => startGatehouse(prepared, logger, testOverrides));
  started = gatehouse;
  if (stopSignal !== null) close(gatehouse);
  const lines = [`Gatehouse is running: console and API at ${gatehouse.url} (OpenAPI: ${gatehouse.url}/api/docs)`];
  if (prepared.generated.adminToken) {
    lines.push(`Admin token (generated, saved in ${prepared.files.adminToken}): ${config.adminToken}`);
  }
  // Of several workers only the first seeds the demo (it starts alone), its files in the node's directory.
  if (config.demo.enabled && stopSignal === null && (worker === null || worker === 1)) {
    const demo = await seedDemoGateway(gatehouse.registry, { dataDir: loaded.config.dataDir, publicHost: config.publicHost, port: config.demo.port });
    if (demo !== null) {
      const state = await gatehouse.runtime.startGateway(demo.gatewayId);
      if (state.status === 'RUNNING') {
        lines.push(
          `A demo gateway is ready (self-signed test certificate; set GATEHOUSE_DEMO=off to skip): ${demo.url}`,
          `  try: mosquitto_sub -h localhost -p ${demo.port} --cafile ${demo.caFile} -u ${demo.username} -P '${demo.password}' -t 'demo/#' -v`,
          `       mosquitto_pub -h localhost -p ${demo.port} --cafile ${demo.caFile} -u ${demo.username} -P '${demo.password}' -t demo/hello -m world`,
        );
      } else {
        // Saying "ready" over a listener that failed sent newcomers after a port that answers nothing.
        lines.push(
          `The demo gateway could not start: ${state.reason ?? state.status}.`,
          `  Give it a free port in the console or with "gatehouse gateways update" (the edit starts it), or set GATEHOUSE_DEMO_PORT on a fresh data directory.`,
          `  Its device: user ${demo.username}, password '${demo.password}', CA file ${demo.caFile}.`,
        );
      }
    }
  }
  if (stopSignal === null) {
    if (worker === null) process.stdout.write(`\n${lines.join('\n')}\n\n`);
    else reportWorkerReady(gatehouse.url, lines);
  }
}
