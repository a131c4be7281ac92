/** CPU and memory readings from Linux /proc, used to charge CPU time to the broker, the generator and the rest. */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** USER_HZ: the unit of the CPU times in /proc/stat and /proc/PID/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    let value = 100;
    try {
      value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      // getconf missing: 100 is the value on every Linux architecture Node runs on.
    }
    clockTicks = value;
  }
  return clockTicks;
}

/** utime + stime of a whole process (all threads, including exited ones) in seconds. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses; the fields after the last ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (field 14) is fields[11] and stime (field 15) is fields[12].
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond();
}

/** Resident set size of a process in KiB (VmRSS). */
export function processRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** CPU seconds the whole machine spent not idle (all CPUs summed), from the first line of /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal: idle and iowait are the only not-busy columns;
  // steal counts as busy because it is CPU the hypervisor gave to someone else.
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return busy / clockTicksPerSecond();
}
