import { duration } from '@netmon/core';
import { z } from 'zod';

export const ebpfReceiverConfig = z.strictObject({
  cgroup_path: z
    .string()
    .optional()
    .describe(
      "cgroup2 directory to attach to: sockets in it and in every cgroup below it are counted. Unset or empty: the cgroup2 root, found in /proc/self/mountinfo (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one), so every socket of the node is seen. In a container with its own cgroup namespace that mount is the container's own cgroup: mount the host's cgroup2 (e.g. at /host/sys/fs/cgroup) and name it here.",
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
      'Distinct flows (connection and local cgroup) one read interval can hold. Each of the two buffers the kernel fills in turn costs about 200 bytes of kernel memory per flow it holds (allocated as flows appear, charged to the memory cgroup of the agent). Packets of flows beyond it are counted as lost (netmon_ebpf_flows_lost), never silently dropped.',
    ),
  coverage_interfaces: z
    .array(z.string().min(1))
    .optional()
    .describe(
      "Interfaces whose byte counters the coverage figure compares with what the receiver saw. Default: every interface of the agent's network namespace but loopback.",
    ),
});

export type EbpfReceiverConfig = z.output<typeof ebpfReceiverConfig>;
