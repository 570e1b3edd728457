import { duration } from '@netmon/core';
import { z } from 'zod';

export const ebpfReceiverConfig = z.strictObject({
  cgroup_path: z
    .string()
    .optional()
    .describe(
      "cgroup2 directory to attach to (a directory on a cgroup2 file system): sockets in it and in every cgroup below it are counted. Unset or empty: the first cgroup2 mount in /proc/self/mountinfo that shows the hierarchy's root, i.e. has no cgroup.type file (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one), so every socket of the node is seen. In a container the cgroup2 mount is usually the container's own cgroup, which the start refuses: mount the host's cgroup2 (e.g. hostPath /sys/fs/cgroup at /host/sys/fs/cgroup) and name it here. A directory that is not cgroup2 but has a cgroup2 `unified` child (a hybrid host's /sys/fs/cgroup mounted so) stands for that child.",
    ),
  read_interval: duration({ min: 100 })
    .prefault('5s')
    .describe(
      'How often the per-interval counters are read out of the kernel. Each read emits the bytes of that interval (deltas): no delta processor is needed after this receiver.',
    ),
  max_flows: z
    .number()
    .int()
    .min(16)
    .max(1 << 22)
    .default(65536)
    .describe(
      'Distinct flows (connection and local cgroup) one read interval can hold. Kernel memory, charged to the memory cgroup of the agent: each of the two buffers the kernel fills in turn costs about 200 bytes per flow it holds, allocated as flows appear (not preallocated); the map that remembers who opened each flow is an LRU map of max_flows entries, which the kernel always preallocates: about 120 bytes × max_flows from load on (7.5 MiB at the default). Packets of flows beyond it are counted as lost (netmon_ebpf_lost_packets), never silently dropped.',
    ),
  coverage_interfaces: z
    .array(z.string().min(1))
    .optional()
    .describe(
      "Interfaces whose byte counters the coverage figure compares with what the receiver saw. Default: every interface of the agent's network namespace but loopback.",
    ),
});

export type EbpfReceiverConfig = z.output<typeof ebpfReceiverConfig>;
