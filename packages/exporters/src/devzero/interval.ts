// One flush interval of the devzero exporter: flows summed per (src IP, dst IP, dst port, protocol), the
// DNS lookups seen, and the IP → domain cache that outlives intervals.
import { type DnsBatch, DnsType, type FlowBatch, formatIp, type StringColumn } from '@netmon/core';

/** The flows of one aggregation key within an interval. */
export interface FlowEntry {
  srcIp: string;
  dstIp: string;
  protocol: number;
  dstPort: number;
  /** '' when unknown. */
  srcPod: string;
  srcNamespace: string;
  dstPod: string;
  dstNamespace: string;
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
  /** ms since the epoch: the latest time_end of the rows summed here. */
  time: number;
}

export interface LookupEntry {
  clientIp: string;
  domain: string;
  resolvedIps: string[];
  /** ms since the epoch. */
  time: number;
}

/** Lookups kept per interval; past it they are dropped and counted (a DNS flood must not exhaust memory). */
export const MAX_LOOKUPS_PER_INTERVAL = 50_000;

/** A string column's value at row i, or '' (no per-row allocation: dictionary strings are shared). */
function text(col: StringColumn | undefined, i: number): string {
  if (col === undefined) return '';
  const c = col.codes[i];
  return c === 0 ? '' : col.dict[c];
}

function stringColumn(batch: FlowBatch, key: string): StringColumn | undefined {
  const col = batch.column(key);
  return col?.kind === 'string' ? col : undefined;
}

/**
 * The aggregation key of row i: both addresses (16 bytes each, as 8 UTF-16 code units), the destination
 * port, and family and protocol in one unit. One 18-unit string per row and nothing else.
 */
export function flowKey(batch: FlowBatch, i: number): string {
  const s = batch.srcAddr;
  const d = batch.dstAddr;
  const o = 16 * i;
  return String.fromCharCode(
    (s[o] << 8) | s[o + 1],
    (s[o + 2] << 8) | s[o + 3],
    (s[o + 4] << 8) | s[o + 5],
    (s[o + 6] << 8) | s[o + 7],
    (s[o + 8] << 8) | s[o + 9],
    (s[o + 10] << 8) | s[o + 11],
    (s[o + 12] << 8) | s[o + 13],
    (s[o + 14] << 8) | s[o + 15],
    (d[o] << 8) | d[o + 1],
    (d[o + 2] << 8) | d[o + 3],
    (d[o + 4] << 8) | d[o + 5],
    (d[o + 6] << 8) | d[o + 7],
    (d[o + 8] << 8) | d[o + 9],
    (d[o + 10] << 8) | d[o + 11],
    (d[o + 12] << 8) | d[o + 13],
    (d[o + 14] << 8) | d[o + 15],
    batch.dstPort[i],
    (batch.family[i] << 8) | batch.protocol[i],
  );
}

/** The flows and lookups of the interval not yet flushed. */
export class Interval {
  readonly flows = new Map<string, FlowEntry>();
  readonly lookups: LookupEntry[] = [];
  droppedLookups = 0;

  constructor(
    /** ms since the epoch when the interval began. */
    readonly started: number,
  ) {}

  get empty(): boolean {
    return this.flows.size === 0 && this.lookups.length === 0;
  }

  /** Adds a batch of per-interval deltas; rows whose four counters are all zero are skipped. */
  addFlows(batch: FlowBatch): void {
    const srcPod = stringColumn(batch, 'src.k8s.pod.name');
    const srcNs = stringColumn(batch, 'src.k8s.namespace.name');
    const dstPod = stringColumn(batch, 'dst.k8s.pod.name');
    const dstNs = stringColumn(batch, 'dst.k8s.namespace.name');
    const { txBytes, rxBytes, txPackets, rxPackets, timeEnd } = batch;
    for (let i = 0; i < batch.length; i++) {
      if (txBytes[i] === 0 && rxBytes[i] === 0 && txPackets[i] === 0 && rxPackets[i] === 0) continue;
      const key = flowKey(batch, i);
      let e = this.flows.get(key);
      if (e === undefined) {
        e = {
          srcIp: batch.srcIp(i),
          dstIp: batch.dstIp(i),
          protocol: batch.protocol[i],
          dstPort: batch.dstPort[i],
          srcPod: '',
          srcNamespace: '',
          dstPod: '',
          dstNamespace: '',
          txBytes: 0,
          rxBytes: 0,
          txPackets: 0,
          rxPackets: 0,
          time: 0,
        };
        this.flows.set(key, e);
      }
      e.txBytes += txBytes[i];
      e.rxBytes += rxBytes[i];
      e.txPackets += txPackets[i];
      e.rxPackets += rxPackets[i];
      if (timeEnd[i] > e.time) e.time = timeEnd[i];
      // A namespace goes with its pod only: a Service's namespace is not a pod's (as zxporter's pod cache).
      const sp = text(srcPod, i);
      if (sp !== '') {
        e.srcPod = sp;
        e.srcNamespace = text(srcNs, i);
      }
      const dp = text(dstPod, i);
      if (dp !== '') {
        e.dstPod = dp;
        e.dstNamespace = text(dstNs, i);
      }
    }
  }

  /** Adds lookups (A and AAAA answers); teaches `ip2domain` every answered address. */
  addDns(batch: DnsBatch, ip2domain: Ip2Domain, now: number): void {
    for (let i = 0; i < batch.length; i++) {
      const domain = batch.names[batch.question[i]];
      const resolvedIps: string[] = [];
      const end = batch.answerStart[i] + batch.answerCount[i];
      for (let k = batch.answerStart[i]; k < end; k++) {
        const type = batch.answerType[k];
        if (type !== DnsType.A && type !== DnsType.AAAA) continue;
        const ip = formatIp(batch.answerAddr, 16 * k, type === DnsType.A ? 4 : 6);
        resolvedIps.push(ip);
        ip2domain.learn(ip, domain, batch.answerTtl[k], now);
      }
      if (this.lookups.length >= MAX_LOOKUPS_PER_INTERVAL) {
        this.droppedLookups++;
        continue;
      }
      this.lookups.push({ clientIp: batch.clientIp(i), domain, resolvedIps, time: batch.time[i] });
    }
  }

  /** IP → [pod, namespace] for the pods seen at either end of this interval's flows. */
  podsByIp(): Map<string, [string, string]> {
    const out = new Map<string, [string, string]>();
    for (const e of this.flows.values()) {
      if (e.srcPod !== '') out.set(e.srcIp, [e.srcPod, e.srcNamespace]);
      if (e.dstPod !== '') out.set(e.dstIp, [e.dstPod, e.dstNamespace]);
    }
    return out;
  }
}

interface DomainEntry {
  domain: string;
  /** ms since the epoch when the answer's TTL runs out. */
  expires: number;
  /** The interval (sequence number) that last saw it: kept at least until that interval is flushed. */
  interval: number;
}

/**
 * IP → question name from DNS answers (A and AAAA), each entry kept for its answer's TTL and at least
 * until the interval that saw it has been flushed, so the flows of that interval can be named. Bounded:
 * when full, the entry learnt longest ago makes room.
 */
export class Ip2Domain {
  private readonly entries = new Map<string, DomainEntry>();
  /** The interval currently being filled. */
  interval = 0;
  evicted = 0;

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  learn(ip: string, domain: string, ttlSeconds: number, now: number): void {
    if (this.maxEntries === 0) return;
    // Refreshing moves an entry to the end: eviction takes the one learnt longest ago.
    this.entries.delete(ip);
    this.entries.set(ip, { domain, expires: now + Math.max(0, ttlSeconds) * 1000, interval: this.interval });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted++;
    }
  }

  get(ip: string): string | undefined {
    return this.entries.get(ip)?.domain;
  }

  /** Called after an interval was flushed: a new interval begins and expired entries go. */
  nextInterval(now: number): void {
    this.interval++;
    for (const [ip, e] of this.entries) {
      if (e.expires < now && e.interval < this.interval) this.entries.delete(ip);
    }
  }

  /** Every live entry, as the request's ip2domain map. */
  snapshot(now: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [ip, e] of this.entries) {
      if (e.expires >= now || e.interval === this.interval) out[ip] = e.domain;
    }
    return out;
  }

  /** For the state file: [ip, domain, expires]. */
  save(): [string, string, number][] {
    return [...this.entries].map(([ip, e]) => [ip, e.domain, e.expires]);
  }

  restore(rows: readonly [string, string, number][], now: number): void {
    for (const [ip, domain, expires] of rows) {
      if (typeof ip !== 'string' || typeof domain !== 'string' || !(expires >= now)) continue;
      this.learn(ip, domain, (expires - now) / 1000, now);
    }
  }
}
