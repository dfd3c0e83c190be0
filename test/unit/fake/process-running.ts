// Whether a process runs: it exists and is not a zombie (a killed child that
// nobody has reaped yet, which kill(pid, 0) would still find).
import { readFileSync } from 'node:fs';

export function processRunning(pid: number): boolean {
  try {
    // pid (comm) state ...: the comm may hold spaces and parentheses, the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
