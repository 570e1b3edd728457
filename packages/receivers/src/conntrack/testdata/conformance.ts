import type { ConformanceOptions } from '@netmon/core/testkit';

/** It reads a kernel conntrack table: its conformance runs in a network namespace of its own, as root. */
export const conformance: ConformanceOptions | { elsewhere: string } = {
  elsewhere: 'test/kernel/conformance.test.ts',
};
