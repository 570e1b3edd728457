// The conntrack receiver's self-metrics, declared once: the receiver observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const CONNTRACK_METRICS = defineMetrics({
  reads: {
    name: 'netmon_conntrack_reads',
    kind: 'counter',
    unit: '{read}',
    description: 'Full conntrack table reads (dumps).',
  },
  readFailures: {
    name: 'netmon_conntrack_read_failures',
    kind: 'counter',
    unit: '{read}',
    description: 'Dumps that failed.',
  },
  retries: {
    name: 'netmon_conntrack_read_retries',
    kind: 'counter',
    unit: '{read}',
    description: 'Quick retries of a failed dump, before the next interval.',
  },
  accountingEnabled: {
    name: 'netmon_conntrack_accounting_enabled',
    kind: 'gauge',
    // No unit: a yes/no is not a ratio (unit "1" would be rendered netmon_conntrack_accounting_enabled_ratio).
    description:
      '1 when net.netfilter.nf_conntrack_acct is 1 in the namespace (byte and packet counters are kept), else 0.',
  },
  entries: {
    name: 'netmon_conntrack_entries',
    kind: 'gauge',
    unit: '{flow}',
    description: 'Entries in the last dump.',
  },
  readDuration: {
    name: 'netmon_conntrack_read_duration',
    kind: 'gauge',
    unit: 's',
    description: 'Kernel read and parse time of the last dump.',
  },
  events: {
    name: 'netmon_conntrack_events',
    kind: 'counter',
    unit: '{event}',
    description: 'NEW and DESTROY events received.',
  },
  eventOverflows: {
    name: 'netmon_conntrack_event_overflows',
    kind: 'counter',
    unit: '{overflow}',
    description:
      'Times the event socket overflowed (ENOBUFS) and events were lost; each is answered by a resync dump.',
  },
  eventsDropped: {
    name: 'netmon_conntrack_events_dropped',
    kind: 'counter',
    unit: '{event}',
    description: 'Parsed events dropped because the agent did not take them in time.',
  },
  malformedMessages: {
    name: 'netmon_conntrack_malformed_messages',
    kind: 'counter',
    unit: '{message}',
    description: 'Netlink messages that failed validation and were skipped.',
  },
  resyncs: {
    name: 'netmon_conntrack_resyncs',
    kind: 'counter',
    unit: '{read}',
    description: 'Resync dumps after lost events.',
  },
});
