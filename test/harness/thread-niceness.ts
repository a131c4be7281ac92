import { readdirSync, readFileSync } from 'node:fs';

/** Niceness of every thread of this process, by thread id (field 19 of /proc/self/task/<tid>/stat; Linux). */
export function threadNiceness(): Map<number, number> {
  const result = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended while we listed them
    }
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    result.set(Number(tid), Number(fields[16]));
  }
  return result;
}
