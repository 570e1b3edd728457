import { existsSync } from 'node:fs';
import { defineReceiver } from '@netmon/core';
import { ebpfReceiverConfig } from './config.js';
import { EBPF_METRICS } from './metrics.js';

export const ebpfReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'ebpf',
  stability: 'alpha',
  description:
    "Counts every socket's bytes with eBPF programs on a cgroup (cgroup_skb ingress and egress): ports, both directions, the cgroup (pod) of the local socket, per-interval deltas.",
  signals: ['flows'],
  config: ebpfReceiverConfig,
  metrics: EBPF_METRICS,
  validate(config) {
    if (config.cgroup_path && !existsSync(config.cgroup_path)) {
      return [
        {
          key: 'cgroup_path',
          message: `${config.cgroup_path} does not exist: give a cgroup2 directory such as /sys/fs/cgroup or /sys/fs/cgroup/kubepods.slice`,
        },
      ];
    }
    return [];
  },
  // The receiver loads the native addon and the BPF object: only when a config uses it.
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).EbpfReceiver(settings, config, next),
});
