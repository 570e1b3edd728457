import {
  type ComponentSettings,
  defineExtension,
  formatDuration,
  type ObservedMetrics,
  observeMetrics,
} from '@netmon/core';
import { DnsNameCache } from './cache.js';
import { type DnsCacheConfig, dnsCacheConfig } from './config.js';
import { DNS_CACHE, type DnsCache } from './contract.js';
import { DNS_CACHE_METRICS } from './metrics.js';

export const dnsCacheFactory = defineExtension({
  kind: 'extension',
  type: DNS_CACHE,
  stability: 'alpha',
  description:
    'Remembers the DNS name each address was resolved from, per client, for the answer’s TTL (clamped to min_ttl..max_ttl), learned from the dns receiver’s answers, so that classify writes dst.domain and matches DNS-name patterns.',
  config: dnsCacheConfig,
  metrics: DNS_CACHE_METRICS,
  create: (settings, config) => createDnsCache(settings, config),
});

export interface DnsCacheOptions {
  /** The clock, ms since the Unix epoch (tests move it instead of sleeping). Default Date.now. */
  now?: () => number;
}

/** The running extension, with its table for tests and the benchmark. */
export interface DnsCacheExtension extends DnsCache {
  readonly cache: DnsNameCache;
  /** Stops reporting and frees every entry. */
  shutdown(): void;
}

export function createDnsCache(
  settings: ComponentSettings,
  config: DnsCacheConfig,
  options: DnsCacheOptions = {},
): DnsCacheExtension {
  const cache = new DnsNameCache({
    maxEntries: config.max_entries,
    minTtlMs: config.min_ttl,
    maxTtlMs: config.max_ttl,
    now: options.now,
  });
  settings.status.describe(() => ({
    entries: cache.size,
    client_entries: cache.clients,
    names: cache.names.size,
    max_entries: cache.maxEntries,
    min_ttl: formatDuration(config.min_ttl),
    max_ttl: formatDuration(config.max_ttl),
  }));
  let observed: ObservedMetrics<typeof DNS_CACHE_METRICS> | undefined = observeMetrics(
    settings.meter,
    DNS_CACHE_METRICS,
    (r) => {
      r.hits(cache.hits);
      r.misses(cache.misses);
      r.learned(cache.learned);
      r.evictions(cache.expired, { reason: 'expired' });
      r.evictions(cache.evicted, { reason: 'capacity' });
      r.entries(cache.addresses, { kind: 'address' });
      r.entries(cache.clients, { kind: 'client' });
      r.names(cache.names.size);
    },
  );
  return {
    cache,
    learn: (batch) => cache.learn(batch),
    domainOf: (addr, offset, client, clientOffset) => cache.domainOf(addr, offset, client, clientOffset),
    shutdown() {
      observed?.close();
      observed = undefined;
      cache.clear();
    },
  };
}
