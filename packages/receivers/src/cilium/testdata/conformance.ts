import type { ConformanceOptions } from '@netmon/core/testkit';

/**
 * It reads Cilium's maps on the node's bpffs: its conformance runs on a stand-in kernel (pinned maps,
 * /proc/schedstat) in the receiver's own tests, never against the host's /sys/fs/bpf from the agent's
 * registry run.
 */
export const conformance: ConformanceOptions | { elsewhere: string } = {
  elsewhere: 'packages/receivers/src/cilium/receiver.test.ts',
};
