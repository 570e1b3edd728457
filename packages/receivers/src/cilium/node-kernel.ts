// The real node access of the cilium receiver: the addon (loaded with the receiver, never at validate
// time) and the node's files.
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readPinnedMap } from '@netmon/native';
import { fsTypeOf } from './bpffs.js';
import type { CiliumKernel } from './kernel.js';

export const nodeKernel: CiliumKernel = {
  readMap: readPinnedMap,
  readProc(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  exists: existsSync,
  fsType: fsTypeOf,
  monotonicNs: () => Number(process.hrtime.bigint()),
  sleep: (ms) => sleep(ms),
};
