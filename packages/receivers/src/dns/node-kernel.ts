// The real node access of the dns receiver: the addon (loaded with the receiver, never at validate time)
// and the node's files.
import { existsSync, readFileSync } from 'node:fs';
import { attachCgroupDns } from '@netmon/native';
import type { DnsKernel } from './kernel.js';

export const nodeKernel: DnsKernel = {
  attach: attachCgroupDns,
  readProc(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  exists: existsSync,
  // libuv's hrtime is CLOCK_MONOTONIC, as bpf_ktime_get_ns() is.
  monotonicNs: () => Number(process.hrtime.bigint()),
};
