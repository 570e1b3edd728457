import path from 'node:path';
import type { ConformanceOptions } from '@netmon/core/testkit';

export const conformance: ConformanceOptions = {
  config: { path: 'testdata/sample-flows.jsonl' },
  configDir: path.dirname(import.meta.dirname),
  runMs: 50,
};
