// The dns_cache extension's self-metrics, declared once: the extension observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const DNS_CACHE_METRICS = defineMetrics({
  hits: {
    name: 'netmon_dns_cache_hits',
    kind: 'counter',
    unit: '{lookup}',
    description:
      'Lookups of an address (classify naming a flow’s destination) that found a name: the one its client got, else the one the address was first resolved to.',
  },
  misses: {
    name: 'netmon_dns_cache_misses',
    kind: 'counter',
    unit: '{lookup}',
    description:
      'Lookups of an address that found no name: never answered to a traced client, expired, or evicted (flows to addresses dialled without DNS count here too).',
  },
  learned: {
    name: 'netmon_dns_cache_learned_answers',
    kind: 'counter',
    unit: '{answer}',
    description:
      'A and AAAA answers learned: those of NOERROR lookups whose owner is the question or a name along its CNAME chain.',
  },
  evictions: {
    name: 'netmon_dns_cache_evictions',
    kind: 'counter',
    unit: '{entry}',
    description:
      'Entries removed, by reason: expired (the TTL, clamped to [min_ttl, max_ttl] and extended by the lookups that found it, ran out) or capacity (the least recently used, to make room past max_entries).',
    attributes: { reason: 'expired or capacity' },
  },
  entries: {
    name: 'netmon_dns_cache_entries',
    kind: 'gauge',
    unit: '{entry}',
    description:
      'Entries held, by kind: address (one per answered address, the name it was first resolved to) or client (a client that got another name for the address than its address entry holds).',
    attributes: { kind: 'address or client' },
  },
  names: {
    name: 'netmon_dns_cache_names',
    kind: 'gauge',
    unit: '{name}',
    description: 'Distinct (question, canonical name) pairs the entries share.',
  },
});
