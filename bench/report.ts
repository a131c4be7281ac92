/** Aggregates repetitions and renders the side-by-side table (markdown-compatible, padded for the console). */
import type { BrokerName } from './brokers.ts';
import { SCENARIOS, type GeneratorResult, type MetricDef, type ScenarioName } from './scenarios.ts';

/** One generator run: one scenario against one fresh broker process in one repetition. */
export interface RunRecord {
  rep: number;
  scenario: ScenarioName;
  broker: BrokerName;
  ok: boolean;
  error?: string;
  result?: GeneratorResult;
  /** gatehouse-parsing: messages its transformPayload parsed, failed, dropped (queue full), and shed (event loop saturated). */
  parsing?: { parsed: number; failed: number; dropped: number; shed: number };
}

export interface Cell {
  /** Best rep for perf metrics, worst rep for fault metrics. */
  value: number;
  min: number;
  max: number;
  reps: number;
  failedReps: number;
}

export interface SummaryRow {
  scenario: ScenarioName;
  metric: string;
  label: string;
  better: 'higher' | 'lower';
  kind: 'perf' | 'fault';
  cells: Partial<Record<BrokerName, Cell>>;
  /** reference ÷ peer, for perf metrics where both have a value. */
  ratios: Partial<Record<BrokerName, number>>;
}

export interface CpuRow {
  scenario: ScenarioName;
  /** Medians over reps, % of one core. */
  cells: Partial<Record<BrokerName, { brokerPct: number; genPct: number; otherPct: number }>>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function aggregate(records: RunRecord[], metric: MetricDef): Cell | undefined {
  const values = records
    .filter((r) => r.ok)
    .map((r) => r.result?.metrics[metric.key])
    .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const failedReps = records.filter((r) => !r.ok).length;
  if (values.length === 0) return failedReps > 0 ? { value: Number.NaN, min: Number.NaN, max: Number.NaN, reps: 0, failedReps } : undefined;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const best = metric.kind === 'fault' || metric.better === 'higher' ? max : min;
  return { value: best, min, max, reps: values.length, failedReps };
}

export function summarize(records: RunRecord[], scenarios: ScenarioName[], brokers: BrokerName[], ref: BrokerName): { rows: SummaryRow[]; cpu: CpuRow[] } {
  const rows: SummaryRow[] = [];
  const cpu: CpuRow[] = [];
  for (const scenario of scenarios) {
    const forScenario = records.filter((r) => r.scenario === scenario);
    for (const metric of SCENARIOS[scenario].metrics) {
      const row: SummaryRow = { scenario, metric: metric.key, label: metric.label, better: metric.better, kind: metric.kind, cells: {}, ratios: {} };
      for (const broker of brokers) {
        const cell = aggregate(forScenario.filter((r) => r.broker === broker), metric);
        if (cell !== undefined) row.cells[broker] = cell;
      }
      const refValue = row.cells[ref]?.value;
      if (metric.kind === 'perf' && refValue !== undefined && Number.isFinite(refValue)) {
        for (const broker of brokers) {
          const peer = row.cells[broker]?.value;
          if (broker !== ref && peer !== undefined && Number.isFinite(peer) && peer !== 0) row.ratios[broker] = refValue / peer;
        }
      }
      rows.push(row);
    }
    const cpuRow: CpuRow = { scenario, cells: {} };
    for (const broker of brokers) {
      const shares = forScenario.filter((r) => r.broker === broker && r.ok && r.result?.cpu).map((r) => r.result!.cpu!);
      if (shares.length > 0) {
        cpuRow.cells[broker] = {
          brokerPct: median(shares.map((s) => s.brokerPct)),
          genPct: median(shares.map((s) => s.genPct)),
          otherPct: median(shares.map((s) => s.otherPct)),
        };
      }
    }
    cpu.push(cpuRow);
  }
  return { rows, cpu };
}

function formatNumber(value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatCell(cell: Cell | undefined, digits: number): string {
  if (cell === undefined) return '-';
  if (cell.reps === 0) return `failed ×${cell.failedReps}`;
  let text = formatNumber(cell.value, digits);
  if (cell.reps > 1 && cell.min !== cell.max) text += ` [${formatNumber(cell.min, digits)}–${formatNumber(cell.max, digits)}]`;
  if (cell.failedReps > 0) text += ` (${cell.failedReps} failed)`;
  return text;
}

function renderTable(header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

export function renderSummary(rows: SummaryRow[], cpu: CpuRow[], brokers: BrokerName[], ref: BrokerName): string {
  const peers = brokers.filter((b) => b !== ref);
  const header = ['scenario', 'metric', ...brokers, ...peers.map((p) => `${ref} vs ${p}`)];
  const body: string[][] = [];
  for (const cpuRow of cpu) {
    for (const row of rows.filter((r) => r.scenario === cpuRow.scenario)) {
      const digits = SCENARIOS[row.scenario].metrics.find((m) => m.key === row.metric)?.digits ?? 1;
      const arrow = row.kind === 'fault' ? '' : row.better === 'higher' ? ' ↑' : ' ↓';
      body.push([
        row.scenario,
        `${row.label}${arrow}`,
        ...brokers.map((b) => formatCell(row.cells[b], digits)),
        ...peers.map((p) => {
          const ratio = row.ratios[p];
          return ratio === undefined ? '' : `×${ratio.toFixed(2)}`;
        }),
      ]);
    }
    body.push([
      cpuRow.scenario,
      'CPU % broker/gen/other',
      ...brokers.map((b) => {
        const c = cpuRow.cells[b];
        return c === undefined ? '-' : `${c.brokerPct.toFixed(0)}/${c.genPct.toFixed(0)}/${c.otherPct.toFixed(0)}`;
      }),
      ...peers.map(() => ''),
    ]);
  }
  return renderTable(header, body);
}
