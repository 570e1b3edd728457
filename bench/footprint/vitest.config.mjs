// The bench's tests, outside the project's test suite (benchmarks are not tests):
//   npx vitest run --config bench/footprint/vitest.config.mjs
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ['*.test.mjs'],
    pool: 'forks',
    testTimeout: 30_000,
  },
});
