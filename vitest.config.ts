import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources (the "@netmon/source" export condition), so `npm test`
// never depends on a stale dist/. Forks, not threads: the native addon is not thread-safe.
export default defineConfig({
  resolve: { conditions: ['@netmon/source'] },
  ssr: { resolve: { conditions: ['@netmon/source'] } },
  test: {
    pool: 'forks',
    include: [
      'packages/*/src/**/*.test.ts',
      'native/src/**/*.test.ts',
      'test/**/*.test.ts',
      'configs/**/*.test.ts',
      'scripts/**/*.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
