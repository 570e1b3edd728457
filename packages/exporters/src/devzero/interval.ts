// One flush interval of the devzero exporter: flows summed per (src IP, dst IP, dst port, protocol), the
// DNS lookups seen, and the IP → domain cache that outlives intervals.
import { type DnsBatch, DnsType, type FlowBatch, formatIp, type StringColumn } from '@netmon/core';
import { TrafficItemTable } from './traffic-item-table.js';

/** The flows of one aggregation key within an interval, as read out at a flush or a peek. */
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
  /** The client's pod as the k8s_metadata store knew it when the lookup arrived; else found at a flush. */
  pod?: PodName;
}

export interface PodName {
  name: string;
  namespace: string;
}

/** Where the pod of a lookup's client is found (the k8s_metadata store), when the lookup arrives. */
export interface LookupPods {
  /**
   * The pod with this UID, whatever its address: a hostNetwork pod's lookups come from its node's address,
   * and only the UID (from the socket's cgroup) makes them its own.
   */
  byPodUid(uid: string): PodName | undefined;
  /** The pod that owns the 16-byte address at `offset` of `addr`. */
  byAddress(addr: Uint8Array, offset: number): PodName | undefined;
}

/**
 * The client pod of a lookup: the one found when it arrived (by its cgroup's pod UID, else by its address
 * in the store), else the pod a flow of the interval names at the client's address (`podsByIp`), else none.
 */
export function lookupPod(
  l: LookupEntry,
  podsByIp: Map<string, [string, string]> | undefined,
): PodName | undefined {
  if (l.pod) return l.pod;
  const p = podsByIp?.get(l.clientIp);
  return p ? { name: p[0], namespace: p[1] } : undefined;
}

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
 * The flows and lookups of the interval not yet flushed: at most `maxItems` of them (flows plus lookups).
 * When it is full, `addFlows` / `addDns` stop at the row that found no room, so the exporter closes the
 * interval early and goes on with the next one: nothing is dropped, and memory stays bounded.
 */
export class Interval {
  readonly flows = new TrafficItemTable();
  readonly lookups: LookupEntry[] = [];

  constructor(
    /** ms since the epoch when the interval began. */
    readonly started: number,
    readonly maxItems: number,
  ) {}

  /** Flows plus lookups. */
  get items(): number {
    return this.flows.size + this.lookups.length;
  }

  get empty(): boolean {
    return this.items === 0;
  }

  /**
   * Adds per-interval deltas from row `from` on; rows whose four counters are all zero are skipped.
   * Returns `batch.length`, or the row whose new key found the interval full (not added).
   */
  addFlows(batch: FlowBatch, from = 0): number {
    const srcPod = stringColumn(batch, 'src.k8s.pod.name');
    const srcNs = stringColumn(batch, 'src.k8s.namespace.name');
    const dstPod = stringColumn(batch, 'dst.k8s.pod.name');
    const dstNs = stringColumn(batch, 'dst.k8s.namespace.name');
    const { txBytes, rxBytes, txPackets, rxPackets, timeEnd } = batch;
    const t = this.flows;
    const limit = this.maxItems - this.lookups.length;
    for (let i = from; i < batch.length; i++) {
      if (txBytes[i] === 0 && rxBytes[i] === 0 && txPackets[i] === 0 && rxPackets[i] === 0) continue;
      const r = t.findOrAdd(batch, i, limit);
      if (r < 0) return i;
      t.txBytes[r] += txBytes[i];
      t.rxBytes[r] += rxBytes[i];
      t.txPackets[r] += txPackets[i];
      t.rxPackets[r] += rxPackets[i];
      if (timeEnd[i] > t.time[r]) t.time[r] = timeEnd[i];
      // A namespace goes with its pod only: a Service's namespace is not a pod's (as zxporter's pod cache).
      const sp = text(srcPod, i);
      if (sp !== '') {
        t.srcPod[r] = sp;
        t.srcNamespace[r] = text(srcNs, i);
      }
      const dp = text(dstPod, i);
      if (dp !== '') {
        t.dstPod[r] = dp;
        t.dstNamespace[r] = text(dstNs, i);
      }
    }
    return batch.length;
  }

  /**
   * Adds lookups from row `from` on: those with at least one A or AAAA answer (as zxporter, which sends
   * only lookups that resolved an address), and teaches `ip2domain` every answered address under the owner
   * name of its own record (as zxporter: the end of the CNAME chain, not the question, when there is one).
   * `domain` is the question as the client asked it. With `pods`, each lookup's client pod is found now (by
   * the pod UID of its cgroup, else by its address). Returns `batch.length`, or the row that found the
   * interval full (not added).
   */
  addDns(batch: DnsBatch, ip2domain: Ip2Domain, now: number, from = 0, pods?: LookupPods): number {
    const { answerType } = batch;
    const address = (k: number) => answerType[k] === DnsType.A || answerType[k] === DnsType.AAAA;
    // Per code of the batch's dictionary: the pod that UID names (null: the store does not know it).
    const byUid = pods ? new Map<number, PodName | null>() : undefined;
    for (let i = from; i < batch.length; i++) {
      const start = batch.answerStart[i];
      const end = start + batch.answerCount[i];
      let k = start;
      while (k < end && !address(k)) k++;
      if (k === end) continue;
      if (this.items >= this.maxItems) return i;
      // zxporter's domain is the first answer's owner. A resolver starts the answer with the chain from the
      // question (RFC 1034 §4.3.2) and in practice writes that owner as a pointer to the question, so it is
      // the question as asked: taken from the question, it does not depend on which records the tracer keeps.
      const domain = batch.names[batch.question[i]];
      // The tracer always reads an owner name; a batch built elsewhere without one names the chain's end.
      const chainEnd = batch.canonical[i] !== 0 ? batch.names[batch.canonical[i]] : domain;
      const resolvedIps: string[] = [];
      for (; k < end; k++) {
        if (!address(k)) continue;
        const ip = formatIp(batch.answerAddr, 16 * k, answerType[k] === DnsType.A ? 4 : 6);
        resolvedIps.push(ip);
        const owner = batch.names[batch.answerName[k]];
        ip2domain.learn(ip, owner !== '' ? owner : chainEnd, batch.answerTtl[k], now);
      }
      const entry: LookupEntry = { clientIp: batch.clientIp(i), domain, resolvedIps, time: batch.time[i] };
      if (pods && byUid) {
        let pod: PodName | null | undefined;
        const uid = batch.podUid[i];
        if (uid !== 0) {
          pod = byUid.get(uid);
          if (pod === undefined) {
            pod = pods.byPodUid(batch.names[uid]) ?? null;
            byUid.set(uid, pod);
          }
        }
        const found = pod || pods.byAddress(batch.clientAddr, 16 * i);
        if (found) entry.pod = found;
      }
      this.lookups.push(entry);
    }
    return batch.length;
  }

  /** Row r of the flows, as an object. */
  entry(r: number): FlowEntry {
    const t = this.flows;
    return {
      srcIp: t.srcIp(r),
      dstIp: t.dstIp(r),
      protocol: t.protocol(r),
      dstPort: t.dstPort(r),
      srcPod: t.srcPod[r],
      srcNamespace: t.srcNamespace[r],
      dstPod: t.dstPod[r],
      dstNamespace: t.dstNamespace[r],
      txBytes: t.txBytes[r],
      rxBytes: t.rxBytes[r],
      txPackets: t.txPackets[r],
      rxPackets: t.rxPackets[r],
      time: t.time[r],
    };
  }

  /** Every flow, in the order first seen (objects made now, at a flush or a peek). */
  *entries(): Generator<FlowEntry> {
    for (let r = 0; r < this.flows.size; r++) yield this.entry(r);
  }

  /** IP → [pod, namespace] for the pods seen at either end of this interval's flows. */
  podsByIp(): Map<string, [string, string]> {
    const out = new Map<string, [string, string]>();
    const t = this.flows;
    for (let r = 0; r < t.size; r++) {
      if (t.srcPod[r] !== '') out.set(t.srcIp(r), [t.srcPod[r], t.srcNamespace[r]]);
      if (t.dstPod[r] !== '') out.set(t.dstIp(r), [t.dstPod[r], t.dstNamespace[r]]);
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
 * IP → the owner name of the A or AAAA record that answered it, each entry kept for its record's TTL and at least
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

  /**
   * The live entries learnt most recently, newest first, as many as fit `maxBytes` (estimated as
   * `bytesOf`), leaving out the addresses in `skip`: what a request carries beyond its own names.
   */
  recent(
    now: number,
    maxBytes: number,
    bytesOf: (ip: string, domain: string) => number,
    skip: Record<string, string> = {},
  ): Record<string, string> {
    const out: Record<string, string> = {};
    if (maxBytes <= 0 || this.entries.size === 0) return out;
    // Map order is learning order (a refresh moves an entry to the end): walk it from the end.
    const ips = Array.from(this.entries.keys());
    let left = maxBytes;
    for (let i = ips.length - 1; i >= 0; i--) {
      const ip = ips[i];
      if (skip[ip] !== undefined) continue;
      const e = this.entries.get(ip) as DomainEntry;
      if (e.expires < now && e.interval !== this.interval) continue;
      const n = bytesOf(ip, e.domain);
      if (n > left) break;
      left -= n;
      out[ip] = e.domain;
    }
    return out;
  }

  /** Every live entry (GET /metrics shows them all). */
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
