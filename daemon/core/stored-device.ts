// A class's devices as the shared store holds them, for status and show:
// every class's shadow answers `shadowctl status` and `shadowctl show
// CLASS:NAME` from its rows alike, so the reading is here once.
import type { DeviceStatus, ShowResult } from './device-status.js';
import { RequestError } from './request-error.js';
import type { DeviceRecord, ShadowStore } from './shadow-store.js';

/** The device of that name in a class: the present one, else the kept shadow of one that is gone. One query, no counts (asked at every stall poll). */
export function storedByName(store: ShadowStore, cls: string, name: string): DeviceRecord | undefined {
  const all = store.devices(cls).filter((d) => d.name === name);
  return all.find((d) => d.present) ?? all[0];
}

/** A stored device as status shows it (passive: the recovery manager fills in the rest). */
export function storedStatus(store: ShadowStore, d: DeviceRecord): DeviceStatus {
  return {
    id: d.id,
    cls: d.cls,
    name: d.name,
    driver: d.driver,
    bus: d.bus,
    mode: 'passive',
    health: d.present ? 'ok' : 'absent',
    keys: store.entryCount(d.id),
    holders: store.holders(d.id).length,
    attrs: d.attrs,
  };
}

/** One device in full; ENODEV, naming the class's noun, when the shadow has none of that name. */
export function storedShow(store: ShadowStore, cls: string, noun: string, name: string): ShowResult {
  const rec = storedByName(store, cls, name);
  if (!rec) throw new RequestError('ENODEV', `shadowd watches no ${noun} named ${name}`);
  return {
    device: storedStatus(store, rec),
    entries: store.entries(rec.id).map((e) => ({ key: e.key, value: e.value, setBy: e.actor, at: e.at })),
    holders: store.holders(rec.id),
  };
}
