// DNS lookups counted by question name and response code (and, when the caller knows it, the client pod),
// with a histogram of their latency: what the prometheus (netmon_dns_lookups_total,
// netmon_dns_lookup_duration_seconds) and otlp (netmon.dns.lookup.count, netmon.dns.lookup.duration)
// exporters both keep, so both spell a name the same way. Question names are a top N by lookups: a resolver
// asked for endless random subdomains (a DNS tunnel, a scanner) makes one series, "other", not millions.
import { type DnsBatch, dnsName, type Granularity, rcodeName } from '@netmon/core';
import { DictionaryIds, SeriesTable, UNKNOWN } from './series-table.js';
import { StringTopN } from './top-n.js';

/** The client of a lookup as the k8s_metadata store knows it: structurally the part of its Entity read. */
export interface DnsClient {
  readonly kind: string;
  namespace?: string;
  pod?: string;
  workloadKind?: string;
  workloadName?: string;
}

/** What identifies a client in a series, coarsest first. */
export type DnsClientLabel = 'namespace' | 'workload_kind' | 'workload' | 'pod';

/** The client labels a granularity keeps: namespace; workload kind and name unless `namespace`; pod at `pod`. */
export function dnsClientLabels(granularity: Granularity): DnsClientLabel[] {
  return [
    'namespace',
    ...(granularity === 'namespace' ? [] : (['workload_kind', 'workload'] as const)),
    ...(granularity === 'pod' ? (['pod'] as const) : []),
  ];
}

function clientValue(client: DnsClient, label: DnsClientLabel): string {
  switch (label) {
    case 'namespace':
      return client.namespace ?? '';
    case 'workload_kind':
      return client.workloadKind ?? '';
    case 'workload':
      return client.workloadName ?? '';
    case 'pod':
      return client.kind === 'pod' ? (client.pod ?? '') : '';
  }
}

/**
 * Upper bounds (seconds, inclusive) of the lookup latency buckets, from a node-local cache's answer
 * (NodeLocal DNSCache: well under a millisecond) through CoreDNS in the cluster (a few ms) and recursion on
 * the internet (tens to hundreds of ms) to the resolver's retries: glibc waits 5 s for an answer before it
 * asks again (resolv.conf(5), `timeout`), so a lookup answered only after a retry lands past 5 s, in +Inf.
 */
export const DURATION_BOUNDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** Column of `table.values` holding the lookups of each series. */
export const LOOKUPS = 0;
/** Sum of the known latencies, seconds. */
export const DURATION_SUM = 1;
/** Lookups whose latency is known (the histogram's count; LOOKUPS counts the others too). */
export const DURATION_COUNT = 2;
/**
 * First of DURATION_BOUNDS.length + 1 columns: lookups per bucket, not cumulative — column
 * DURATION_BUCKETS + b counts latencies in (bound[b - 1], bound[b]], the last one those above every bound.
 */
export const DURATION_BUCKETS = 3;
/** Columns a DnsSeries table has; callers add theirs after them. */
export const DNS_COLUMNS = DURATION_BUCKETS + DURATION_BOUNDS.length + 1;

/** Finds the clients of lookups in the k8s_metadata store. */
export interface DnsClients {
  /** The owner of the 16-byte address at `offset` of `addr` (the store's `lookup`). */
  byAddress(addr: Uint8Array, offset: number): DnsClient | null | undefined;
  /**
   * The pod with this UID (the store's `podByUid`) whatever its address: a hostNetwork pod's lookups come
   * from its node's address, and only its UID (from the socket's cgroup) tells them apart from the node's.
   */
  byPodUid(uid: string): DnsClient | null | undefined;
}

export interface DnsSeriesOptions {
  /** Question names that keep their own value (the most looked up); the rest are OTHER. */
  top: number;
  /**
   * The exporter's expiration (ms): a name stays at least twice this once admitted and the ranking decays
   * with this half-life, so a replaced name's series have expired before its slot can change again.
   */
  expirationMs: number;
}

/** Response codes are 12 bits with EDNS (RFC 6891 §6.1.3): the largest a label can spell. */
const MAX_RCODE = 4095;

/**
 * Lookups and their latency per series: labels are the client labels (in the order given), then the
 * question name (`dnsName`, one of the top N or OTHER), then the response code's mnemonic (`rcodeName`).
 * Without client labels (or without `clients`) a series is a name and a response code.
 */
export class DnsSeries {
  readonly table: SeriesTable;
  /** Index of the question name among the table's labels. */
  readonly nameLabel: number;
  /** Index of the response code among the table's labels (the last one). */
  readonly rcodeLabel: number;
  /** The top N behind the question name (status, tests). */
  readonly top: StringTopN;
  private readonly ids: Int32Array;
  private readonly values: (string | undefined)[];
  private readonly names = new DictionaryIds();
  private readonly rcodes = new DictionaryIds();
  /** Response code + 1 → mnemonic ('' at 0, no value): grown as codes are first seen, so ids last. */
  private readonly rcodeDict: string[] = [''];
  /** Per code of a batch's dictionary: its rows' lookups and the code of its rows in `top.dict`. */
  private weights = new Float64Array(0);
  private codeOf = new Uint32Array(0);

  constructor(
    readonly clientLabels: readonly DnsClientLabel[],
    maxSeries: number,
    options: DnsSeriesOptions,
  ) {
    const width = clientLabels.length + 2;
    this.table = new SeriesTable(width, maxSeries);
    for (let c = 0; c < DNS_COLUMNS; c++) this.table.addColumn();
    this.nameLabel = clientLabels.length;
    this.rcodeLabel = clientLabels.length + 1;
    this.top = new StringTopN({
      n: options.top,
      holdMs: 2 * options.expirationMs,
      halfLifeMs: options.expirationMs,
    });
    this.ids = new Int32Array(width);
    this.values = new Array(width).fill(undefined);
  }

  add(batch: DnsBatch, now: number, clients?: DnsClients): void {
    const n = batch.length;
    if (n === 0) return;
    const t = this.table;
    const { ids, values, nameLabel, rcodeLabel } = this;
    const questions = this.rankQuestions(batch, now);
    this.names.reset(t, this.top.dict);
    const { rcode, latency } = batch;
    let maxRcode = 0;
    for (let i = 0; i < n; i++) if (rcode[i] > maxRcode) maxRcode = rcode[i];
    const dict = this.rcodeDict;
    while (dict.length <= Math.min(maxRcode, MAX_RCODE) + 1) dict.push(rcodeName(dict.length - 1));
    this.rcodes.reset(t, dict);
    const labelled = nameLabel > 0 && clients ? new Map<DnsClient, string[]>() : undefined;
    // Per code of the batch's dictionary: the pod that UID names (null: the store does not know it).
    const pods = labelled ? new Map<number, DnsClient | null>() : undefined;
    for (let i = 0; i < n; i++) {
      for (let l = 0; l < nameLabel; l++) ids[l] = 0;
      if (labelled && clients) {
        let client: DnsClient | null | undefined;
        const uid = batch.podUid[i];
        if (uid !== 0 && pods) {
          client = pods.get(uid);
          if (client === undefined) {
            client = clients.byPodUid(batch.names[uid]) ?? null;
            pods.set(uid, client);
          }
        }
        const found = client || clients.byAddress(batch.clientAddr, 16 * i);
        if (found) {
          let labels = labelled.get(found);
          if (!labels) {
            labels = this.clientLabels.map((l) => clientValue(found, l));
            labelled.set(found, labels);
          }
          for (let l = 0; l < nameLabel; l++) {
            if (labels[l] === '') continue;
            ids[l] = UNKNOWN;
            values[l] = labels[l];
          }
        }
      }
      this.names.put(questions[batch.question[i]], ids, values, nameLabel);
      const rc = rcode[i];
      if (rc >= 0 && rc <= MAX_RCODE) this.rcodes.put(rc + 1, ids, values, rcodeLabel);
      else ids[rcodeLabel] = 0;
      const s = t.findOrAdd(ids, now, values);
      // Read after findOrAdd: growing the table replaces its value columns.
      const v = t.values;
      v[LOOKUPS][s] += 1;
      const ms = latency[i];
      if (!(ms >= 0)) continue; // NaN: no query was seen for this answer
      const seconds = ms / 1000;
      v[DURATION_SUM][s] += seconds;
      v[DURATION_COUNT][s] += 1;
      let b = 0;
      while (b < DURATION_BOUNDS.length && seconds > DURATION_BOUNDS[b]) b++;
      v[DURATION_BUCKETS + b][s] += 1;
    }
  }

  /**
   * Offers each distinct question of the batch to the top N once, with its lookups, after the top N's
   * review (so every row of the batch sees one set of names); returns, per code of the batch's dictionary,
   * the code of its rows in `top.dict` (0 for no question).
   */
  private rankQuestions(batch: DnsBatch, now: number): Uint32Array {
    const top = this.top;
    top.review(now);
    const size = batch.names.length;
    if (this.weights.length < size) {
      const cap = Math.max(size, 2 * this.weights.length);
      this.weights = new Float64Array(cap);
      this.codeOf = new Uint32Array(cap);
    }
    const { weights, codeOf } = this;
    weights.fill(0, 0, size);
    const question = batch.question;
    for (let i = 0; i < batch.length; i++) weights[question[i]] += 1;
    const names = batch.names;
    for (let c = 1; c < size; c++) {
      if (weights[c] === 0) continue;
      // Spellings of one name (0x20 case randomization) are one value of the top N.
      const name = dnsName(names[c]);
      codeOf[c] = name === '' ? 0 : top.offer(name, weights[c], now);
    }
    codeOf[0] = 0;
    return codeOf;
  }

  /** For /status: the labels by the names the exporter gives them, and the top N of question names. */
  facts(names: readonly string[]): {
    labels: string[];
    top_n: Record<string, { named: number; top: number; replaced: number }>;
  } {
    const top = this.top;
    return {
      labels: [...names],
      top_n: { [names[this.nameLabel]]: { named: top.admitted, top: top.n, replaced: top.replaced } },
    };
  }
}
