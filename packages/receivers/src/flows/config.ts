import { z } from 'zod';
import { ciliumReceiverConfig } from '../cilium/config.js';
import { conntrackReceiverConfig } from '../conntrack/config.js';
import { ebpfReceiverConfig } from '../ebpf/config.js';

export const COLLECTION_MODES = ['netfilter', 'ebpf', 'cilium', 'auto'] as const;
export type CollectionMode = (typeof COLLECTION_MODES)[number];

/** The modes that run a receiver: every mode but auto, which picks one of them. */
export const RUNNABLE_MODES = ['netfilter', 'ebpf', 'cilium'] as const;
export type RunnableMode = (typeof RUNNABLE_MODES)[number];

/** The order auto tries the modes in, and falls back along. */
export const AUTO_ORDER = ['cilium', 'ebpf', 'netfilter'] as const satisfies readonly RunnableMode[];

// The wrapped receivers' own schemas, nested: a problem keeps its whole path
// (receivers::flows::ebpf::max_flows) and every block is checked whatever the mode, so a typo in the
// block of a mode not chosen today is found before the day it is.
export const flowsReceiverConfig = z.strictObject({
  mode: z
    .enum(COLLECTION_MODES)
    .default('auto')
    .describe(
      "How flows are collected: netfilter (the kernel's conntrack table), ebpf (programs on the cgroup2 root counting every socket's bytes), cilium (Cilium's own conntrack maps, pinned on a Cilium node), or auto, which probes the node (Cilium's maps in cilium.maps_dir, then BTF, cgroup2 and the capabilities eBPF needs, then conntrack), runs the first usable one and says in the log and /status what it chose and why. A mode named here that cannot start fails the start with the reason; only auto falls back, to the next usable mode in that order.",
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
  cilium: ciliumReceiverConfig
    .prefault({})
    .describe(
      "Settings of the cilium receiver, used when the mode is cilium (or auto chooses it); auto also looks for Cilium's maps under its maps_dir and map_names. Its defaults otherwise.",
    ),
});

export type FlowsReceiverConfig = z.output<typeof flowsReceiverConfig>;
