// How many interrupts a sound card's PCI function has raised: the sound
// class's sign of lost interrupts. A card that stops interrupting leaves
// its running streams' DMA going (the position read from the driver still
// advances) while their readers and writers, woken only by period
// interrupts, stop; the kernel then fails their call with EIO. The count
// is the sum of /proc/interrupts over the function's lines (its MSI
// vectors from msi_irqs/, else its INTx line from irq). A line another
// device's handler shares says nothing about this card: it is reported as
// shared and the detector does not use it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CardInterrupts {
  /** Interrupts raised on the card's lines since boot, summed over CPUs. */
  count: bigint;
  /** Some line also serves another device's handler: its count is not the card's alone. */
  shared: boolean;
  /** The lines counted. */
  lines: number[];
}

/** One /proc/interrupts row: the line, its total and its handlers' names. */
export interface InterruptRow {
  irq: number;
  total: bigint;
  actions: string[];
}

/**
 * Parses /proc/interrupts: a header of CPU names, then per line "N:" and one
 * count per CPU, then the chip and its description, then the handlers'
 * names separated by ", ". Rows that are not numbered lines (NMI, LOC, ERR
 * ...) are skipped; a malformed numbered row is an error.
 */
export function parseInterrupts(text: string): Map<number, InterruptRow> {
  const lines = text.split('\n');
  const cpus = (lines[0] ?? '').trim().split(/\s+/).filter((c) => /^CPU\d+$/.test(c)).length;
  if (cpus === 0) throw new Error('/proc/interrupts has no CPU header');
  const rows = new Map<number, InterruptRow>();
  for (const line of lines.slice(1)) {
    const m = /^\s*(\d+):(.*)$/.exec(line);
    if (!m) continue;
    const fields = m[2]!.trim().split(/\s+/);
    if (fields.length < cpus || !fields.slice(0, cpus).every((f) => /^\d+$/.test(f))) {
      throw new Error(`/proc/interrupts line ${m[1]} has no ${cpus} counts: ${line.trim().slice(0, 120)}`);
    }
    const total = fields.slice(0, cpus).reduce((a, f) => a + BigInt(f), 0n);
    // After the counts: the chip, its line description, then the handlers.
    const rest = fields.slice(cpus + 2).join(' ');
    const actions = rest ? rest.split(/,\s*/).map((a) => a.trim()).filter(Boolean) : [];
    rows.set(Number(m[1]), { irq: Number(m[1]), total, actions });
  }
  return rows;
}

/** The interrupt lines of a PCI function (its sysfs directory): MSI vectors, else its INTx line; empty when it has none. */
export async function pciLines(deviceDir: string): Promise<number[]> {
  try {
    const msi = await readdir(join(deviceDir, 'msi_irqs'));
    const vectors = msi.filter((n) => /^\d+$/.test(n)).map(Number);
    if (vectors.length > 0) return vectors.sort((a, b) => a - b);
  } catch {
    // No MSI: the INTx line.
  }
  try {
    const irq = Number((await readFile(join(deviceDir, 'irq'), 'utf8')).trim());
    return Number.isInteger(irq) && irq > 0 ? [irq] : [];
  } catch {
    return [];
  }
}

/** The card's count from a parsed table; null when none of its lines is in it. */
export function cardInterrupts(rows: Map<number, InterruptRow>, lines: readonly number[]): CardInterrupts | null {
  let count = 0n;
  let shared = false;
  const seen: number[] = [];
  for (const irq of lines) {
    const row = rows.get(irq);
    if (!row) continue;
    count += row.total;
    shared ||= row.actions.length > 1;
    seen.push(irq);
  }
  return seen.length ? { count, shared, lines: seen } : null;
}

/** Reads the card's count now: its bus device's lines in /proc/interrupts. */
export async function readCardInterrupts(deviceDir: string, procInterrupts = '/proc/interrupts'): Promise<CardInterrupts | null> {
  const lines = await pciLines(deviceDir);
  if (lines.length === 0) return null;
  return cardInterrupts(parseInterrupts(await readFile(procInterrupts, 'utf8')), lines);
}
