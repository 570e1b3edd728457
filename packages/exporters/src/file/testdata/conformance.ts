import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ConformanceOptions } from '@netmon/core/testkit';

const dir = path.join(os.tmpdir(), `netmon-file-exporter-conformance-${process.pid}`);

/** Writes under a directory of its own, removed afterwards. */
export const conformance: ConformanceOptions = {
  config: { path: 'out/flows.jsonl' },
  configDir: dir,
  cleanup: () => rm(dir, { recursive: true, force: true }),
};
