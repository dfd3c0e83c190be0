// The two lists of classes: classes/declarations.ts (what main.ts starts the
// taps from, before it loads any class's runtime) and classes/registry.ts
// (the classes with their runtimes) name the same classes, in the same order,
// with the same declarations.
import { describe, expect, it } from 'vitest';
import { DECLARATIONS } from '../../../daemon/classes/declarations.js';
import { CLASSES } from '../../../daemon/classes/registry.js';

describe('the class declarations', () => {
  it('are the registry\'s classes, in its order, each as its class declares itself', () => {
    expect(DECLARATIONS.map((d) => d.id)).toEqual(CLASSES.map((c) => c.id));
    DECLARATIONS.forEach((decl, i) => {
      const cls = CLASSES[i]!;
      const own = Object.entries(cls);
      for (const [key, value] of Object.entries(decl)) expect(own.find(([k]) => k === key)?.[1], `${decl.id}: ${key}`).toBe(value);
    });
  });
});
