import { existsSync, readFileSync } from 'node:fs';
import { defineReceiver } from '@netmon/core';
import { ebpfReceiverConfig } from './config.js';
import { cgroup2Mount, hybridCgroup2, isOnCgroup2 } from './kernel.js';
import { EBPF_METRICS } from './metrics.js';

/** Where this node's cgroup2 hierarchy is mounted, in words for an error message. */
function whereCgroup2Is(): string {
  let mountinfo = '';
  try {
    mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    // No mountinfo to read: the generic advice below.
  }
  const mount = cgroup2Mount(mountinfo);
  return mount
    ? `this node's cgroup2 hierarchy is mounted at ${mount}`
    : 'cgroup2 is /sys/fs/cgroup on a unified host and /sys/fs/cgroup/unified on a hybrid one';
}

export const ebpfReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'ebpf',
  stability: 'alpha',
  description:
    "Counts every socket's bytes with eBPF programs on a cgroup (cgroup_skb ingress and egress): ports, both directions, the cgroup (pod) of the local socket, per-interval deltas.",
  signals: ['flows'],
  config: ebpfReceiverConfig,
  metrics: EBPF_METRICS,
  validate(config, ctx) {
    if (!config.cgroup_path) return [];
    const path = hybridCgroup2(config.cgroup_path);
    if (!existsSync(path)) {
      return [
        {
          key: 'cgroup_path',
          message: `${path} does not exist: give a cgroup2 directory such as /sys/fs/cgroup or /sys/fs/cgroup/kubepods.slice`,
        },
      ];
    }
    // On a cgroup v1 host /sys/fs/cgroup is a tmpfs of v1 controllers: the programs attach to cgroup2 only.
    if (!isOnCgroup2(path) && !ctx?.tentative) {
      return [
        {
          key: 'cgroup_path',
          message: `${path} is not on a cgroup2 file system (eBPF programs attach to cgroup2 directories only): ${whereCgroup2Is()}`,
        },
      ];
    }
    return [];
  },
  // The receiver loads the native addon and the BPF object: only when a config uses it.
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).EbpfReceiver(settings, config, next),
});
