// The reducer's tables: what it takes from each tap event, and what it
// leaves on purpose. (What the actions are, event by event, is in
// netdev-shadow.test.ts; that the tables match bpf/netdev-class.bt is
// tap-contract.test.ts.)
import { describe, expect, it } from 'vitest';
import { NOT_REDUCED, REDUCED_EVENTS, REDUCERS, reduceEvent } from '../../../../daemon/classes/net/netdev-reducer.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';

const r = (line: string) => reduceEvent(parseTapRecord(`${line} kthread=0 pid=5 ts=1 comm=x`));

describe('the reducer tables', () => {
  it('reduce an event or leave it, never both, and say why they leave one', () => {
    expect([...REDUCED_EVENTS].sort()).toEqual([...REDUCERS.keys()].sort());
    for (const ev of NOT_REDUCED.keys()) expect(REDUCED_EVENTS.has(ev), ev).toBe(false);
    for (const [ev, why] of NOT_REDUCED) expect(why.why.length, ev).toBeGreaterThan(10);
  });

  it('take nothing from the events they leave, nor from events they do not know', () => {
    expect(r('ev=xmit_timeout name=eth0 driver=e1000 queue=0')).toEqual([]);
    expect(r('ev=ethtool_nl_set ifindex=2 name=eth0 msg=16 ret=0')).toEqual([]);
    expect(r('ev=ethtool_nl_nodev netns=4026531840 ret=-19')).toEqual([]);
    expect(r('ev=carrier_on ifindex=2 name=eth0')).toEqual([]);
    expect(r('ev=rx_mode ifindex=2 name=eth0 flags=0x1103 promisc=1 allmulti=0 uc=0 mc=3 uc_promisc=0')).toEqual([]);
    expect(r('ev=no_such_event ifindex=2 name=eth0 ret=0')).toEqual([]);
    // A table keyed by a plain object would find Object.prototype's members.
    expect(r('ev=constructor ifindex=2 name=eth0 ret=0')).toEqual([]);
  });
});
