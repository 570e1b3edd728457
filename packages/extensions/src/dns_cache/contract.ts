// What the dns_cache extension offers the components that declare it: the dns receiver teaches it every
// answer it sees; classify reads it to fill dst.domain (and to match its DNS-name patterns, which may only
// match the canonical name of a CNAME chain: a private endpoint's alias). Consumers import this module,
// never the extension's code.
import { type DnsBatch, type Extension, extensionKey } from '@netmon/core';

/**
 * The names behind a cached address: what the client asked for, and where its CNAME chain ended. One
 * object per distinct pair, shared by every entry that has it, so a consumer may key its own per-name
 * work (pattern matches) on the object.
 */
export interface DnsName {
  /** The question as asked, spelt as series carry names: lower case, no trailing dot. */
  readonly name: string;
  /** The end of its CNAME chain, spelt the same way; '' when the answer had no CNAME. */
  readonly canonical: string;
}

export interface DnsCache extends Extension {
  /**
   * Learns the A and AAAA answers of the batch's NOERROR lookups whose owner is the question or a name
   * along its CNAME chain: the answered address → its lookup's question and canonical name, for the client
   * that asked, until the smallest TTL along the chain to that address (clamped by the cache's config)
   * runs out.
   */
  learn(batch: DnsBatch): void;
  /**
   * The names the 16-byte address at `offset` of `addr` was resolved from: as `client` (the 16-byte
   * address at `clientOffset` of `client`, when given) resolved it in its latest answer, else the name the
   * address was first resolved to, for as long as the cache keeps that (what a client that never asked
   * gets); another client's answer never changes the name a client that asked gets while the cache keeps
   * it. Undefined when the cache holds none. A hit keeps the entry at least the cache's `min_ttl` longer, so a connection that outlives its
   * answer's TTL keeps its name.
   */
  domainOf(addr: Uint8Array, offset: number, client?: Uint8Array, clientOffset?: number): DnsName | undefined;
}

export const DNS_CACHE = extensionKey<DnsCache>('dns_cache');
