// The devzero exporter's own self-metrics, declared once: the exporter observes them, the factory lists
// them (with the send queue's) for the README and the conformance check.
import { defineMetrics } from '@netmon/core';

export const DEVZERO_METRICS = defineMetrics({
  flushItems: {
    name: 'netmon_devzero_flush_items',
    kind: 'histogram',
    unit: '{item}',
    description:
      'Flows plus DNS lookups in each interval the devzero exporter flushed (empty ones included).',
    attributes: { component: 'the exporter id' },
    boundaries: [0, 10, 100, 1000, 10_000, 100_000, 1_000_000],
  },
  flushes: {
    name: 'netmon_devzero_flushes',
    kind: 'counter',
    unit: '{flush}',
    description:
      'Intervals the devzero exporter closed: outcome=queued (requests made and queued), empty (nothing to send), local_only (no endpoint: discarded).',
    attributes: { component: 'the exporter id', outcome: 'queued, empty or local_only' },
  },
  requests: {
    name: 'netmon_devzero_requests',
    kind: 'counter',
    unit: '{request}',
    description:
      'SendNetworkTrafficMetrics requests built (an interval larger than max_items_per_request makes several).',
    attributes: { component: 'the exporter id' },
  },
  heartbeats: {
    name: 'netmon_devzero_heartbeats',
    kind: 'counter',
    unit: '{call}',
    description: 'ReportHealth calls, by outcome (success, failure). Failed heartbeats are not retried.',
    attributes: { component: 'the exporter id', outcome: 'success or failure' },
  },
  ip2domainEntries: {
    name: 'netmon_devzero_ip2domain_entries',
    kind: 'gauge',
    unit: '{entry}',
    description:
      'Entries in the IP → domain cache (each request carries its own addresses’ names and the most recent entries that fit its budget).',
    attributes: { component: 'the exporter id' },
  },
  earlyFlushes: {
    name: 'netmon_devzero_early_flushes',
    kind: 'counter',
    unit: '{flush}',
    description:
      'Intervals closed before flush_interval because they held max_items_per_interval flows and lookups (queued like any other: nothing dropped).',
    attributes: { component: 'the exporter id' },
  },
  stateWriteFailures: {
    name: 'netmon_devzero_state_write_failures',
    kind: 'counter',
    unit: '{write}',
    description: 'Failed writes of the state file (sending_queue::directory).',
    attributes: { component: 'the exporter id' },
  },
});
