import type { ConformanceOptions } from '@netmon/core/testkit';

/**
 * Its wrapped receivers read the kernel (conntrack, BPF programs): its conformance runs with the real
 * conntrack receiver on a stand-in kernel and a made-up node, in every way auto can end.
 */
export const conformance: ConformanceOptions | { elsewhere: string } = {
  elsewhere: 'packages/receivers/src/flows/conformance.test.ts',
};
