// What the dns_cache extension (the IP → domain map fed by the dns receiver) offers the components that
// declare it: classify fills dst.domain from it. Consumers import this module, never the extension's code.
import { type Extension, extensionKey } from '@netmon/core';

export interface DnsCache extends Extension {
  /** The name the 16-byte address at `offset` of `addr` was last resolved from, if the cache holds one. */
  domainOf(addr: Uint8Array, offset: number): string | undefined;
}

export const DNS_CACHE = extensionKey<DnsCache>('dns_cache');
