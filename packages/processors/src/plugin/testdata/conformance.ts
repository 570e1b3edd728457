import type { ConformanceOptions } from '@netmon/core/testkit';

export const conformance: ConformanceOptions = {
  config: { module: './passthrough.mjs' },
  configDir: import.meta.dirname,
};
