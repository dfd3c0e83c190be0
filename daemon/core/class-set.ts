// The registered classes, looked up by id and name rule: what the core, the
// control socket and the configuration are given in place of importing any
// class (they never import daemon/classes/).
import type { ClassDeclaration } from './device-class.js';
import { CLASS_ID, parseRef, type DeviceRef, type NameRule } from './device-ref.js';

export class ClassSet<C extends ClassDeclaration = ClassDeclaration> {
  private readonly byId: ReadonlyMap<string, C>;
  /** id → name rule, for parseRef. */
  readonly rules: ReadonlyMap<string, NameRule>;

  constructor(readonly all: readonly C[]) {
    const byId = new Map<string, C>();
    for (const c of all) {
      if (!CLASS_ID.test(c.id)) throw new Error(`class id ${JSON.stringify(c.id)} is not a sysfs class name`);
      if (byId.has(c.id)) throw new Error(`class ${c.id} is registered twice`);
      byId.set(c.id, c);
    }
    this.byId = byId;
    this.rules = new Map(all.map((c) => [c.id, c.names]));
  }

  get ids(): string[] {
    return [...this.byId.keys()];
  }

  get(id: string): C | undefined {
    return this.byId.get(id);
  }

  /** The class of that id; throws when none is registered (a programming error, not a user's). */
  require(id: string): C {
    const c = this.byId.get(id);
    if (!c) throw new Error(`no device class ${JSON.stringify(id)} is registered`);
    return c;
  }

  /** Parses `CLASS:NAME` (device-ref.ts); throws DeviceRefError. */
  parseRef(text: string): DeviceRef {
    return parseRef(text, this.rules);
  }

  /** The classes in which `name` is a valid device name (for a bare name: one means it is unambiguous). */
  classesAllowing(name: string): C[] {
    return this.all.filter((c) => c.names.valid(name));
  }
}
