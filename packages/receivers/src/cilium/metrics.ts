// The cilium receiver's self-metrics, declared once: the receiver observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

const MAP = { map: 'the map read (tcp4, any4, tcp6, any6)' };

export const CILIUM_METRICS = defineMetrics({
  reads: {
    name: 'netmon_cilium_reads',
    kind: 'counter',
    unit: '{read}',
    description: 'Reads of the conntrack maps (all of them, once each).',
  },
  readFailures: {
    name: 'netmon_cilium_read_failures',
    kind: 'counter',
    unit: '{read}',
    description:
      'Map reads that failed: a missing map, sizes other than the layout’s, an unreadable bpffs. The other maps of that read are still emitted.',
    attributes: MAP,
  },
  truncatedReads: {
    name: 'netmon_cilium_truncated_reads',
    kind: 'counter',
    unit: '{read}',
    description: 'Map reads that stopped at max_entries with entries left.',
    attributes: MAP,
  },
  entries: {
    name: 'netmon_cilium_entries',
    kind: 'gauge',
    unit: '{entry}',
    description:
      'Entries in the last read, by map and kind: connection, service, related, pair (the IN twin of a local connection, not reported again), expired.',
    attributes: { ...MAP, kind: 'connection, service, related, pair or expired' },
  },
  readDuration: {
    name: 'netmon_cilium_read_duration',
    kind: 'gauge',
    unit: 's',
    description: 'Time of the last read of all maps, decoding included.',
  },
});
