/**
 * The pure part of `npm run bench:cluster` (issue 16): the ledger that counts every message sent,
 * acknowledged and delivered (so "lost" and "duplicates" are counted, never assumed), percentiles, CPU
 * per unit of work, and the table with each topology's ratio against the single node.
 */

/** Flags of one message in the ledger. */
const SENT = 1;
const ACKED = 2;
const DELIVERED = 4;

export interface LedgerCounts {
  /** Distinct messages written by publishers (a resend of the same sequence number counts once). */
  sent: number;
  /** Distinct messages the broker acknowledged (PUBACK): the ones it must deliver. */
  acked: number;
  /** Distinct messages the subscriber(s) received. */
  delivered: number;
  /** Deliveries of a message already delivered (QoS 1 allows them; they are counted, not hidden). */
  duplicates: number;
  /** Acknowledged and never delivered: a broken QoS 1 promise. */
  lostAcked: number;
  /** Sent and never delivered, acknowledged or not (QoS 0 may lose these). */
  missing: number;
  /** Deliveries of a sequence number never sent: a corrupt payload or a bug in the bench. */
  unknown: number;
}

/**
 * One flag byte per (publisher, sequence number). Sequence numbers are dense from 0 per publisher, so a
 * growing byte array per publisher holds the whole run (a few MB at most).
 */
export class Ledger {
  #flags: Uint8Array[] = [];
  #duplicates = 0;
  #unknown = 0;

  #slot(publisher: number, seq: number, grow: boolean): Uint8Array | undefined {
    let flags = this.#flags[publisher];
    if (flags === undefined || seq >= flags.length) {
      if (!grow) return flags !== undefined && seq < flags.length ? flags : undefined;
      const next = new Uint8Array(Math.max(1024, 2 ** Math.ceil(Math.log2(seq + 1))));
      if (flags !== undefined) next.set(flags);
      this.#flags[publisher] = next;
      flags = next;
    }
    return flags;
  }

  sent(publisher: number, seq: number): void {
    this.#slot(publisher, seq, true)![seq]! |= SENT;
  }

  acked(publisher: number, seq: number): void {
    this.#slot(publisher, seq, true)![seq]! |= ACKED;
  }

  /** Records a delivery; true the first time this message arrives. */
  delivered(publisher: number, seq: number): boolean {
    const flags = this.#slot(publisher, seq, false);
    if (flags === undefined || (flags[seq]! & SENT) === 0) {
      this.#unknown++;
      return false;
    }
    if ((flags[seq]! & DELIVERED) !== 0) {
      this.#duplicates++;
      return false;
    }
    flags[seq]! |= DELIVERED;
    return true;
  }

  /** Whether every acknowledged message has been delivered (the drain is complete). */
  allAckedDelivered(): boolean {
    return this.counts().lostAcked === 0;
  }

  counts(): LedgerCounts {
    const c: LedgerCounts = { sent: 0, acked: 0, delivered: 0, duplicates: this.#duplicates, lostAcked: 0, missing: 0, unknown: this.#unknown };
    for (const flags of this.#flags) {
      if (flags === undefined) continue;
      for (const f of flags) {
        if ((f & SENT) === 0) continue;
        c.sent++;
        if ((f & ACKED) !== 0) c.acked++;
        if ((f & DELIVERED) !== 0) c.delivered++;
        else {
          c.missing++;
          if ((f & ACKED) !== 0) c.lostAcked++;
        }
      }
    }
    return c;
  }
}

/** The q-quantile of ascending `sorted` (nearest rank); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export interface LatencySummary { p50: number; p99: number; max: number; n: number }

export function latencySummary(samples: number[] | Float64Array): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!, n: sorted.length };
}

/** CPU seconds spent per unit of work, in `scale` units (1e6 for µs, 1e3 for ms); NaN without work. */
export function cpuPer(cpuSeconds: number, units: number, scale: number): number {
  return units > 0 ? (cpuSeconds * scale) / units : Number.NaN;
}

export interface FigureDef {
  key: string;
  label: string;
  /** perf figures get a ratio against the reference topology; fault figures (lost, duplicates) do not. */
  kind: 'perf' | 'fault';
  better: 'higher' | 'lower';
  digits: number;
}

/** Every figure of the table, in the order printed. */
export const FIGURES: FigureDef[] = [
  { key: 'qos0_msgs_per_s', label: 'QoS 0 delivered msg/s', kind: 'perf', better: 'higher', digits: 0 },
  { key: 'qos0_cpu_us_per_msg', label: 'QoS 0 CPU µs/msg (nodes + nats)', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'qos0_missing', label: 'QoS 0 missing after drain', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'qos1_msgs_per_s', label: 'QoS 1 delivered msg/s', kind: 'perf', better: 'higher', digits: 0 },
  { key: 'qos1_cpu_us_per_msg', label: 'QoS 1 CPU µs/msg (nodes + nats)', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'qos1_lost', label: 'QoS 1 lost (PUBACKed, not delivered)', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'qos1_duplicates', label: 'QoS 1 duplicates', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'lat0_p50_ms', label: 'QoS 0 at 5,000/s: p50 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat0_p99_ms', label: 'QoS 0 at 5,000/s: p99 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat0_cpu_us_per_msg', label: 'QoS 0 at 5,000/s: CPU µs/msg', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'lat0_missing', label: 'QoS 0 at 5,000/s: missing', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'lat1_p50_ms', label: 'QoS 1 at 5,000/s: p50 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat1_p99_ms', label: 'QoS 1 at 5,000/s: p99 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat1_puback_p50_ms', label: 'QoS 1 at 5,000/s: PUBACK p50 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat1_puback_p99_ms', label: 'QoS 1 at 5,000/s: PUBACK p99 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat1_cpu_us_per_msg', label: 'QoS 1 at 5,000/s: CPU µs/msg', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'lat1_lost', label: 'QoS 1 at 5,000/s: lost', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'lat1_duplicates', label: 'QoS 1 at 5,000/s: duplicates', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'lat2_p50_ms', label: 'QoS 2 (persistent) at 5,000/s: p50 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat2_p99_ms', label: 'QoS 2 (persistent) at 5,000/s: p99 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat2_pubrec_p50_ms', label: 'QoS 2 (persistent) at 5,000/s: PUBREC p50 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat2_pubrec_p99_ms', label: 'QoS 2 (persistent) at 5,000/s: PUBREC p99 ms', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'lat2_cpu_us_per_msg', label: 'QoS 2 (persistent) at 5,000/s: CPU µs/msg', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'lat2_lost', label: 'QoS 2 (persistent) at 5,000/s: lost', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'lat2_duplicates', label: 'QoS 2 (persistent) at 5,000/s: duplicates', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'takeover_connack_p50_ms', label: 'takeover: CONNECT → CONNACK p50 ms', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'takeover_connack_max_ms', label: 'takeover: CONNECT → CONNACK max ms', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'takeover_closed_p50_ms', label: 'takeover: CONNECT → old socket closed p50 ms', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'takeover_closed_max_ms', label: 'takeover: CONNECT → old socket closed max ms', kind: 'perf', better: 'lower', digits: 1 },
  { key: 'takeover_failed', label: 'takeover: rounds failed', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'failover_sessions', label: 'failover: persistent sessions on the killed process', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'failover_resumed_s', label: 'failover: kill -9 → all those sessions reconnected, s', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'failover_session_present', label: 'failover: of those, Session Present 1', kind: 'fault', better: 'higher', digits: 0 },
  { key: 'failover_drained_s', label: 'failover: kill -9 → every PUBACKed message delivered, s', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'failover_acked', label: 'failover: messages PUBACKed', kind: 'fault', better: 'higher', digits: 0 },
  { key: 'failover_lost', label: 'failover: lost (PUBACKed, not delivered)', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'failover_duplicates', label: 'failover: duplicates', kind: 'fault', better: 'lower', digits: 0 },
  { key: 'storm_connects_per_s', label: 'storm: connects/s (TLS + password, cold)', kind: 'perf', better: 'higher', digits: 0 },
  { key: 'storm_cpu_ms_per_connect', label: 'storm: CPU ms/connect (nodes + nats)', kind: 'perf', better: 'lower', digits: 2 },
  { key: 'storm_connected', label: 'storm: devices connected', kind: 'fault', better: 'higher', digits: 0 },
  { key: 'storm_retries', label: 'storm: CONNECTs retried', kind: 'fault', better: 'lower', digits: 0 },
];

/** ref ÷ topology would read backwards here: the table says what the cluster costs, so topology ÷ ref. */
export function ratio(value: number | undefined, ref: number | undefined): number | undefined {
  if (value === undefined || ref === undefined || !Number.isFinite(value) || !Number.isFinite(ref) || ref === 0) return undefined;
  return value / ref;
}

function formatNumber(value: number | undefined, digits: number): string {
  if (value === undefined) return '-';
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * A markdown table: one row per figure, one column per topology, then `topology ÷ ref` for every other
 * topology on perf rows (×2.00 on a ↓ row = twice the single node's cost).
 */
export function renderTable(results: Record<string, Record<string, number>>, topologies: string[], ref: string): string {
  const others = topologies.filter((t) => t !== ref && results[t] !== undefined);
  const header = ['figure', ...topologies, ...others.map((t) => `${t} ÷ ${ref}`)];
  const body: string[][] = [];
  for (const f of FIGURES) {
    if (!topologies.some((t) => results[t]?.[f.key] !== undefined)) continue;
    const arrow = f.kind === 'fault' ? '' : f.better === 'higher' ? ' ↑' : ' ↓';
    body.push([
      `${f.label}${arrow}`,
      ...topologies.map((t) => formatNumber(results[t]?.[f.key], f.digits)),
      ...others.map((t) => {
        if (f.kind !== 'perf') return '';
        const r = ratio(results[t]?.[f.key], results[ref]?.[f.key]);
        return r === undefined ? '' : `×${r.toFixed(2)}`;
      }),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
