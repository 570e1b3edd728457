// From a closed interval to the payloads the send queue holds, and from a payload to the request on the wire.
import { type Interval, type Ip2Domain, lookupPod } from './interval.js';
import {
  type DnsLookupItem,
  type NetworkTrafficItem,
  type SendNetworkTrafficMetricsRequest,
  timestamp,
} from './proto.js';

/**
 * Estimated protobuf bytes of one request, everything included (items, lookups, ip2domain); the real
 * size stays below (the estimates err high), under the 4 MiB many gRPC servers accept.
 */
export const REQUEST_BUDGET_BYTES = 3 * 1024 * 1024;
/**
 * The part of the budget kept for the most recently learnt ip2domain entries beyond the request's own
 * addresses (about 5,000 entries): the rest goes to items, lookups and the names of their addresses.
 */
export const RECENT_DOMAINS_BYTES = 256 * 1024;
/** What items, lookups and the names of their own addresses may use of a request. */
export const ITEM_BUDGET_BYTES = REQUEST_BUDGET_BYTES - RECENT_DOMAINS_BYTES;

/**
 * One request's worth of an interval, waiting in the send queue (and in the state file: plain JSON).
 * `domains` holds the names known at flush time for the addresses of its own items; when it is sent,
 * the request's ip2domain is those plus the most recently learnt entries of the cache that fit the rest
 * of the budget.
 */
export interface Payload {
  node_name: string;
  /** ms since the epoch when its interval was flushed. */
  flushed: number;
  items: NetworkTrafficItem[];
  dns_lookups: DnsLookupItem[];
  domains: Record<string, string>;
}

export const payloadItems = (p: Payload): number => p.items.length + p.dns_lookups.length;

/** Generous upper bounds of an item's encoded size (tags, lengths, varints of 10 bytes, timestamp). */
function itemBytes(i: NetworkTrafficItem): number {
  return 80 + i.src_ip.length + i.dst_ip.length + i.src_pod_name.length + i.src_pod_namespace.length;
}

function lookupBytes(l: DnsLookupItem): number {
  let n = 40 + l.client_ip.length + l.domain.length + l.src_pod_name.length + l.src_pod_namespace.length;
  for (const ip of l.resolved_ips) n += ip.length + 2;
  return n;
}

/** Estimated bytes of one ip2domain map entry. */
export const domainBytes = (ip: string, domain: string): number => 12 + ip.length + domain.length;

/** Estimated protobuf bytes of a payload's items, lookups and own names (without the recent entries). */
export function payloadBytes(p: Payload): number {
  let n = 64 + p.node_name.length;
  for (const i of p.items) n += itemBytes(i);
  for (const l of p.dns_lookups) n += lookupBytes(l);
  for (const ip in p.domains) n += domainBytes(ip, p.domains[ip]);
  return n;
}

export interface BuildOptions {
  nodeName: string;
  maxItemsPerRequest: number;
  now: number;
}

/** The wire items of an interval: every flow with a non-zero counter, and every lookup. */
export function intervalItems(interval: Interval): { items: NetworkTrafficItem[]; lookups: DnsLookupItem[] } {
  const items: NetworkTrafficItem[] = [];
  for (const e of interval.entries()) {
    if (e.txBytes === 0 && e.rxBytes === 0 && e.txPackets === 0 && e.rxPackets === 0) continue;
    items.push({
      src_ip: e.srcIp,
      dst_ip: e.dstIp,
      src_pod_name: e.srcPod,
      src_pod_namespace: e.srcNamespace,
      protocol: e.protocol,
      dst_port: e.dstPort,
      tx_bytes: e.txBytes,
      rx_bytes: e.rxBytes,
      tx_packets: e.txPackets,
      rx_packets: e.rxPackets,
      timestamp: timestamp(e.time),
    });
  }
  const pods = interval.lookups.some((l) => !l.pod) ? interval.podsByIp() : undefined;
  const lookups = interval.lookups.map((l): DnsLookupItem => {
    const pod = lookupPod(l, pods);
    return {
      client_ip: l.clientIp,
      domain: l.domain,
      resolved_ips: l.resolvedIps,
      timestamp: timestamp(l.time),
      src_pod_name: pod?.name ?? '',
      src_pod_namespace: pod?.namespace ?? '',
    };
  });
  return { items, lookups };
}

/**
 * Splits an interval into payloads of at most `maxItemsPerRequest` items (flows first, then lookups) whose
 * items, lookups and names of their own addresses stay within ITEM_BUDGET_BYTES. An empty interval gives
 * none.
 */
export function buildPayloads(interval: Interval, ip2domain: Ip2Domain, opts: BuildOptions): Payload[] {
  const { items, lookups } = intervalItems(interval);
  const payloads: Payload[] = [];
  const budget = ITEM_BUDGET_BYTES - 64 - opts.nodeName.length;
  let current: Payload | undefined;
  let bytes = 0;
  const room = (size: number): Payload => {
    if (
      current === undefined ||
      payloadItems(current) >= opts.maxItemsPerRequest ||
      (bytes + size > budget && payloadItems(current) > 0)
    ) {
      current = { node_name: opts.nodeName, flushed: opts.now, items: [], dns_lookups: [], domains: {} };
      payloads.push(current);
      bytes = 0;
    }
    bytes += size;
    return current;
  };
  const name = (p: Payload, ip: string) => {
    const domain = ip2domain.get(ip);
    if (domain !== undefined && p.domains[ip] === undefined) {
      p.domains[ip] = domain;
      bytes += domainBytes(ip, domain);
    }
  };
  for (const item of items) {
    const p = room(itemBytes(item));
    p.items.push(item);
    name(p, item.dst_ip);
    name(p, item.src_ip);
  }
  for (const lookup of lookups) room(lookupBytes(lookup)).dns_lookups.push(lookup);
  return payloads;
}

/**
 * The request for a payload. Its ip2domain: the payload's own names (as of its flush) over `recent`, the
 * cache's most recent entries that fit what the payload leaves of the budget (`Ip2Domain.recent`).
 */
export function toRequest(
  p: Payload,
  recent: Record<string, string>,
  version: string,
  commit: string,
): SendNetworkTrafficMetricsRequest {
  return {
    // zxporter-netmon leaves both empty: the backend knows the cluster from the token.
    cluster_id: '',
    team_id: '',
    node_name: p.node_name,
    items: p.items,
    dns_lookups: p.dns_lookups,
    ip2domain: { ...recent, ...p.domains },
    // proto3 optional, always present (zxporter sends them even when empty).
    operator_version: version,
    operator_commit: commit,
  };
}
