// The node access the dns receiver needs, as a seam: node-kernel.ts is the real one (the addon), unit
// tests drive decoding, matching and scheduling with a stand-in that hands out records they wrote.
import type { attachCgroupDns } from '@netmon/native';
import type { NodeFiles } from '../ebpf/kernel.js';

export interface DnsKernel extends NodeFiles {
  attach: typeof attachCgroupDns;
  /** CLOCK_MONOTONIC in ns, the clock the records' ktime is on. */
  monotonicNs(): number;
}
