import { existsSync } from 'node:fs';
import { defineReceiver, getExtension } from '@netmon/core';
import { DNS_CACHE } from '@netmon/extensions';
import { hybridCgroup2, isOnCgroup2 } from '../ebpf/kernel.js';
import { dnsReceiverConfig } from './config.js';
import { DNS_METRICS } from './metrics.js';

export const dnsReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'dns',
  stability: 'alpha',
  description:
    'Traces DNS lookups with eBPF programs on a cgroup (UDP and TCP port 53, IPv4 and IPv6): question, response code, latency, A/AAAA/CNAME records with TTLs, the client’s cgroup and pod; feeds the dns_cache extension.',
  signals: ['dns'],
  optionalExtensions: [DNS_CACHE],
  config: dnsReceiverConfig,
  metrics: DNS_METRICS,
  validate(config) {
    // optional: a node without the cgroup it names runs without DNS, said at start, rather than not at all.
    if (!config.cgroup_path || config.optional) return [];
    const path = hybridCgroup2(config.cgroup_path);
    if (!existsSync(path)) {
      return [
        {
          key: 'cgroup_path',
          message: `${path} does not exist: give a cgroup2 directory such as /sys/fs/cgroup or /sys/fs/cgroup/kubepods.slice`,
        },
      ];
    }
    if (!isOnCgroup2(path)) {
      return [
        {
          key: 'cgroup_path',
          message: `${path} is not on a cgroup2 file system (eBPF programs attach to cgroup2 directories only)`,
        },
      ];
    }
    return [];
  },
  // The receiver loads the native addon and the BPF object: only when a config uses it.
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).DnsReceiver(
      settings,
      config,
      next,
      getExtension(settings, DNS_CACHE),
    ),
});
