// The part of a class's runtime that only hands the core's calls on to the
// class's shadow: every class's shadow applies batches, re-reads after a gap,
// catches up and answers status and show alike, so the forwarding is here
// once and a class's open() adds only what is its own.
import type { ClassRuntime } from './device-class.js';
import type { DeviceStatus, ShowResult } from './device-status.js';
import type { TapEvent } from './tap-record.js';

/** What every class's shadow offers (NetdevShadow, DiskShadow). */
export interface ClassShadow {
  applyBatch(batch: readonly TapEvent[]): void;
  resync(why: string): Promise<void>;
  requestResync(why: string): Promise<void>;
  caughtUp(): Promise<void>;
  settled(): Promise<void>;
  pendingReads(): number;
  status(): DeviceStatus[];
  show(name: string): ShowResult;
}

export type ShadowRuntime = Pick<ClassRuntime, 'applyEvents' | 'resync' | 'requestResync' | 'caughtUp' | 'settled' | 'pendingReads' | 'list' | 'show'>;

export function shadowRuntime(shadow: ClassShadow): ShadowRuntime {
  return {
    applyEvents: (batch) => shadow.applyBatch(batch),
    resync: (why) => shadow.resync(why),
    requestResync: (why) => shadow.requestResync(why),
    caughtUp: () => shadow.caughtUp(),
    settled: () => shadow.settled(),
    pendingReads: () => shadow.pendingReads(),
    list: () => shadow.status(),
    show: (name) => shadow.show(name),
  };
}
