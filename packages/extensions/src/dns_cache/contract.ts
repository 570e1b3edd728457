// What an IP → domain extension of type dns_cache offers the components that declare it: classify fills
// dst.domain from it when one is enabled. No such extension ships yet; this contract is what one provides.
import { type Extension, extensionKey } from '@netmon/core';

export interface DnsCache extends Extension {
  /** The name the 16-byte address at `offset` of `addr` was last resolved from, if the cache holds one. */
  domainOf(addr: Uint8Array, offset: number): string | undefined;
}

export const DNS_CACHE = extensionKey<DnsCache>('dns_cache');
