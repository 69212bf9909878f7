import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Model runs and CLI subprocesses take seconds on a 2-core machine; keep one file per worker.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
