/** The benchmark scenarios: their shape (read by the generator) and the metrics they report (read by the report). */

export type ScenarioName =
  | 'storm-tls'
  | 'idle-tls'
  | 'qos0-tls'
  | 'qos0-plain'
  | 'qos1-tls'
  | 'qos1-plain'
  | 'fanout'
  | 'lat0-tls'
  | 'lat1-tls';

/** How a metric aggregates over repetitions: `perf` cells show the best rep and get a ratio; `fault` cells
 * (errors, lost messages) show the worst rep and get no ratio, since any non-zero value is the news. */
export interface MetricDef {
  key: string;
  label: string;
  better: 'higher' | 'lower';
  kind: 'perf' | 'fault';
  digits: number;
}

export type ScenarioShape =
  | { kind: 'storm'; tls: true; connections: number; inflight: number; warmupConnections: number }
  | { kind: 'idle'; tls: true; connections: number; inflight: number; idleMs: number; keepalive: number }
  | { kind: 'fanin'; tls: boolean; qos: 0 | 1; publishers: number; window: number }
  | { kind: 'fanout'; tls: boolean; subscribers: number; window: number }
  | { kind: 'latency'; tls: boolean; qos: 0 | 1; publishers: number; rate: number };

export interface ScenarioDef {
  name: ScenarioName;
  summary: string;
  shape: ScenarioShape;
  metrics: MetricDef[];
}

/** Every PUBLISH carries this many payload bytes. */
export const PAYLOAD_BYTES = 100;
/** Keep alive of load clients; long enough that no PINGREQ is ever due during a scenario. */
export const LOAD_KEEPALIVE = 1200;
/** Frames a publisher writes per socket write at most (a device-like burst, not one giant buffer). */
export const MAX_BURST = 16;

const throughputMetrics: MetricDef[] = [
  { key: 'msgs_per_s', label: 'delivered msg/s', better: 'higher', kind: 'perf', digits: 0 },
  { key: 'broker_us_per_msg', label: 'broker CPU µs/msg', better: 'lower', kind: 'perf', digits: 1 },
  { key: 'missing', label: 'missing after drain', better: 'lower', kind: 'fault', digits: 0 },
];

const latencyMetrics: MetricDef[] = [
  { key: 'p50_ms', label: 'p50 ms', better: 'lower', kind: 'perf', digits: 2 },
  { key: 'p99_ms', label: 'p99 ms', better: 'lower', kind: 'perf', digits: 2 },
  { key: 'p999_ms', label: 'p99.9 ms', better: 'lower', kind: 'perf', digits: 2 },
  // The share of messages that met a stall: where it crosses 1 % decides p99.
  { key: 'over_200us_pct', label: '% of msgs > 0.2 ms', better: 'lower', kind: 'perf', digits: 2 },
  { key: 'broker_us_per_msg', label: 'broker CPU µs/msg', better: 'lower', kind: 'perf', digits: 1 },
  { key: 'lost', label: 'lost after drain', better: 'lower', kind: 'fault', digits: 0 },
];

export const SCENARIOS: Record<ScenarioName, ScenarioDef> = {
  'storm-tls': {
    name: 'storm-tls',
    summary: '2000 full TLS 1.3 handshakes, 100 in flight, CONNECT→CONNACK',
    shape: { kind: 'storm', tls: true, connections: 2000, inflight: 100, warmupConnections: 100 },
    metrics: [
      { key: 'connects_per_s', label: 'connects/s', better: 'higher', kind: 'perf', digits: 0 },
      { key: 'broker_ms_per_connect', label: 'broker CPU ms/connect', better: 'lower', kind: 'perf', digits: 2 },
      { key: 'errors', label: 'errors', better: 'lower', kind: 'fault', digits: 0 },
    ],
  },
  'idle-tls': {
    name: 'idle-tls',
    summary: '5000 idle TLS clients (keepalive 1200 s) on a fresh broker, held 3 s',
    shape: { kind: 'idle', tls: true, connections: 5000, inflight: 100, idleMs: 3000, keepalive: 1200 },
    metrics: [
      { key: 'kib_per_conn', label: 'broker KiB RSS/conn', better: 'lower', kind: 'perf', digits: 1 },
      { key: 'broker_ms_per_connect', label: 'broker CPU ms/connect', better: 'lower', kind: 'perf', digits: 2 },
      { key: 'errors', label: 'errors', better: 'lower', kind: 'fault', digits: 0 },
    ],
  },
  'qos0-tls': {
    name: 'qos0-tls',
    summary: '50 publishers → 1 subscriber on bench/#, QoS 0, TLS, window 1000',
    shape: { kind: 'fanin', tls: true, qos: 0, publishers: 50, window: 1000 },
    metrics: throughputMetrics,
  },
  'qos0-plain': {
    name: 'qos0-plain',
    summary: '50 publishers → 1 subscriber on bench/#, QoS 0, plain TCP, window 1000',
    shape: { kind: 'fanin', tls: false, qos: 0, publishers: 50, window: 1000 },
    metrics: throughputMetrics,
  },
  'qos1-tls': {
    name: 'qos1-tls',
    summary: '50 publishers → 1 subscriber on bench/#, QoS 1 both legs, TLS, window 500',
    shape: { kind: 'fanin', tls: true, qos: 1, publishers: 50, window: 500 },
    metrics: throughputMetrics,
  },
  'qos1-plain': {
    name: 'qos1-plain',
    summary: '50 publishers → 1 subscriber on bench/#, QoS 1 both legs, plain TCP, window 500',
    shape: { kind: 'fanin', tls: false, qos: 1, publishers: 50, window: 500 },
    metrics: throughputMetrics,
  },
  fanout: {
    name: 'fanout',
    summary: '1 publisher → 500 subscribers on one topic, QoS 0, plain TCP, 100 publishes in flight',
    shape: { kind: 'fanout', tls: false, subscribers: 500, window: 100 },
    metrics: throughputMetrics,
  },
  'lat0-tls': {
    name: 'lat0-tls',
    summary: '50 publishers → 1 subscriber paced at 5000 msg/s, QoS 0, TLS; publish→deliver latency',
    shape: { kind: 'latency', tls: true, qos: 0, publishers: 50, rate: 5000 },
    metrics: latencyMetrics,
  },
  'lat1-tls': {
    name: 'lat1-tls',
    summary: '50 publishers → 1 subscriber paced at 5000 msg/s, QoS 1, TLS; publish→deliver latency',
    shape: { kind: 'latency', tls: true, qos: 1, publishers: 50, rate: 5000 },
    metrics: latencyMetrics,
  },
};

export const SCENARIO_NAMES = Object.keys(SCENARIOS) as ScenarioName[];

export function isScenarioName(name: string): name is ScenarioName {
  return Object.hasOwn(SCENARIOS, name);
}

/** Timing knobs shared by the runner and the generator (seconds). */
export interface Timing {
  warmup: number;
  duration: number;
  drain: number;
}

export const DEFAULT_TIMING: Timing = { warmup: 2, duration: 6, drain: 3 };

/** CPU split over a scenario's measured window, in % of one core. */
export interface CpuShare {
  wallSeconds: number;
  brokerPct: number;
  genPct: number;
  otherPct: number;
}

/** What the generator prints (one JSON line on stdout) for one scenario against one broker. */
export interface GeneratorResult {
  scenario: ScenarioName;
  ok: boolean;
  error?: string;
  metrics: Record<string, number>;
  cpu: CpuShare | null;
  /** Negotiated TLS parameters of the first connection, to show every broker got the same handshake. */
  tls?: { protocol: string; cipher: string; group: string };
  notes: string[];
}

/** Upper bound on a generator run, after which the runner kills it. */
export function hardTimeoutSeconds(shape: ScenarioShape, timing: Timing): number {
  switch (shape.kind) {
    case 'storm':
      return 120;
    case 'idle':
      return 180;
    default:
      return 60 + timing.warmup + timing.duration + timing.drain;
  }
}
