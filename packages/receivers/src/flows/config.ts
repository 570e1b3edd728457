import { z } from 'zod';
import { conntrackReceiverConfig } from '../conntrack/config.js';
import { ebpfReceiverConfig } from '../ebpf/config.js';

export const COLLECTION_MODES = ['netfilter', 'ebpf', 'cilium', 'auto'] as const;
export type CollectionMode = (typeof COLLECTION_MODES)[number];

/** The modes this version can run: cilium is a name users may write, whose receiver is not here yet. */
export const RUNNABLE_MODES = ['netfilter', 'ebpf'] as const;
export type RunnableMode = (typeof RUNNABLE_MODES)[number];

// The wrapped receivers' own schemas, nested: a problem keeps its whole path
// (receivers::flows::ebpf::max_flows) and both blocks are checked whatever the mode, so a typo in the
// block of a mode not chosen today is found before the day it is.
export const flowsReceiverConfig = z.strictObject({
  mode: z
    .enum(COLLECTION_MODES)
    .default('auto')
    .describe(
      "How flows are collected: netfilter (the kernel's conntrack table), ebpf (programs on the cgroup2 root counting every socket's bytes), cilium (Cilium's conntrack maps; not in this version: choosing it fails the start, saying so), or auto, which probes the node (Cilium's pinned maps, then BTF, cgroup2 and the capabilities eBPF needs, then conntrack) and says in the log and /status what it chose and why. A chosen mode that cannot start fails the start with the reason; only auto falls back, from ebpf to netfilter.",
    ),
  netfilter: conntrackReceiverConfig
    .prefault({})
    .describe(
      'Settings of the conntrack receiver, used when the mode is netfilter (or auto chooses it). Its defaults otherwise.',
    ),
  ebpf: ebpfReceiverConfig
    .prefault({})
    .describe(
      'Settings of the ebpf receiver, used when the mode is ebpf (or auto chooses it). Its defaults otherwise.',
    ),
});

export type FlowsReceiverConfig = z.output<typeof flowsReceiverConfig>;
