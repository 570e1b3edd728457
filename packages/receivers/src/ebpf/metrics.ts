// The eBPF receiver's self-metrics, declared once: the receiver observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const EBPF_METRICS = defineMetrics({
  reads: {
    name: 'netmon_ebpf_reads',
    kind: 'counter',
    unit: '{read}',
    description: 'Reads of the per-interval counters.',
  },
  readFailures: {
    name: 'netmon_ebpf_read_failures',
    kind: 'counter',
    unit: '{read}',
    description: 'Reads that failed.',
  },
  flows: {
    name: 'netmon_ebpf_flows',
    kind: 'gauge',
    unit: '{flow}',
    description:
      'Flows in the last read (after a connection seen from both its local ends is merged into one).',
  },
  readDuration: {
    name: 'netmon_ebpf_read_duration',
    kind: 'gauge',
    unit: 's',
    description: 'Time of the last read: buffer swap, batch lookup and delete, merge.',
  },
  lostPackets: {
    name: 'netmon_ebpf_lost_packets',
    kind: 'counter',
    unit: '{packet}',
    description:
      'Packets not counted because the interval buffer was full (max_flows distinct flows already in it) or the kernel had no memory for a new entry.',
  },
  lostBytes: {
    name: 'netmon_ebpf_lost_bytes',
    kind: 'counter',
    unit: 'By',
    description: 'Bytes of the packets counted in netmon_ebpf_lost_packets.',
  },
  malformed: {
    name: 'netmon_ebpf_malformed_packets',
    kind: 'counter',
    unit: '{packet}',
    description: 'Packets whose IP or transport header could not be read; they are not counted in any flow.',
  },
  seenBytes: {
    name: 'netmon_ebpf_seen_bytes',
    kind: 'counter',
    unit: 'By',
    description:
      "Bytes the receiver counted to or from addresses outside this host's loopback, the numerator of the coverage figure.",
  },
  interfaceBytes: {
    name: 'netmon_ebpf_interface_bytes',
    kind: 'counter',
    unit: 'By',
    description:
      'Bytes the compared interfaces sent and received over the same intervals (their kernel counters, which include link-layer headers).',
  },
  coverage: {
    name: 'netmon_ebpf_coverage',
    kind: 'gauge',
    unit: '1',
    description:
      "Share of the interfaces' bytes the receiver accounted for over the last read interval (seen / interface bytes). Forwarded traffic never passes a local socket; link-layer headers are not in the receiver's counts.",
  },
});
