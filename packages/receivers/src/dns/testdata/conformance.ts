import type { ConformanceOptions } from '@netmon/core/testkit';

/**
 * It loads BPF programs into the kernel: its conformance runs on a stand-in kernel (the addon's DNS tracer,
 * /proc files) in the receiver's own tests, and on a real cgroup of its own, as root, in
 * test/kernel/conformance.test.ts — never on the host's cgroup2 root from the agent's registry run.
 */
export const conformance: ConformanceOptions | { elsewhere: string } = {
  elsewhere: 'packages/receivers/src/dns/receiver.test.ts',
};
