import type { ConformanceOptions } from '@netmon/core/testkit';

/**
 * It loads BPF programs into the kernel: its conformance runs on a stand-in kernel (the addon's flow
 * counter, /proc files) in the receiver's own tests.
 */
export const conformance: ConformanceOptions | { elsewhere: string } = {
  elsewhere: 'packages/receivers/src/ebpf/receiver.test.ts',
};
