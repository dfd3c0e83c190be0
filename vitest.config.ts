import { defineConfig } from 'vitest/config';

// Two projects: unit tests are fast and need no root or kernel; vm tests boot
// QEMU guests, each of which takes a few seconds and one host core, so they run
// one file at a time.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'vm',
          include: ['test/vm/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
