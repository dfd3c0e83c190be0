// The seed's evaluation tables ("Recovering Device Drivers", Swift et al.,
// OSDI 2004; the slides in ../shared/seed), printed beside ours. They are the
// paper's measurements, quoted, keyed by our class ids (the seed's IDE class
// is our block class).

export type SeedOutcome = 'works' | 'app break' | 'app crash' | 'system crash';

export interface SeedApplication {
  app: string;
  /** Our class id. */
  cls: string;
  native: SeedOutcome;
  nooks: SeedOutcome;
  shadow: SeedOutcome;
}

export const SEED_RELIABILITY: readonly SeedApplication[] = [
  { app: 'mp3 player', cls: 'sound', native: 'app crash', nooks: 'app break', shadow: 'works' },
  { app: 'audio recorder', cls: 'sound', native: 'system crash', nooks: 'app break', shadow: 'works' },
  { app: 'speech synthesizer', cls: 'sound', native: 'system crash', nooks: 'works', shadow: 'works' },
  { app: 'game', cls: 'sound', native: 'system crash', nooks: 'app crash', shadow: 'works' },
  { app: 'remote copy', cls: 'net', native: 'system crash', nooks: 'works', shadow: 'works' },
  { app: 'remote window', cls: 'net', native: 'system crash', nooks: 'works', shadow: 'works' },
  { app: 'packet sniffer', cls: 'net', native: 'system crash', nooks: 'app break', shadow: 'works' },
  { app: 'compiler', cls: 'block', native: 'system crash', nooks: 'system crash', shadow: 'works' },
  { app: 'encoder', cls: 'block', native: 'system crash', nooks: 'system crash', shadow: 'works' },
  { app: 'database', cls: 'block', native: 'system crash', nooks: 'system crash', shadow: 'works' },
];

export interface SeedClassSize {
  /** Our class id, and the seed's name for the class. */
  cls: string;
  seedClass: string;
  drivers: string[];
  driversInClass: number;
  allDriversLines: number;
  example: { driver: string; lines: number };
  shadowLines: number;
}

export const SEED_CODE_SIZE: readonly SeedClassSize[] = [
  { cls: 'sound', seedClass: 'Sound', drivers: ['emu10k1', 'es1371', 'sb16', 'cs4232', 'i810_audio'], driversInClass: 48, allDriversLines: 111_600, example: { driver: 'emu10k1', lines: 8_080 }, shadowLines: 666 },
  { cls: 'net', seedClass: 'Network', drivers: ['e1000', 'pcnet32', '3c59x', 'epic100', 'e100'], driversInClass: 190, allDriversLines: 264_500, example: { driver: 'e1000', lines: 9_842 }, shadowLines: 198 },
  { cls: 'block', seedClass: 'IDE', drivers: ['ide-disk', 'ide-cd'], driversInClass: 8, allDriversLines: 29_000, example: { driver: 'ide-disk', lines: 5_358 }, shadowLines: 321 },
];

/** The seed's generic parts: Nooks (the isolation it builds on), the shadow manager, common shadow code. */
export const SEED_GENERIC = { nooks: 23_000, shadowManager: 600, commonCode: 750 } as const;
