import {
  type Batch,
  type ComponentSettings,
  type DnsBatch,
  DnsType,
  type Exporter,
  FlowBatch,
  type NumberColumn,
  rcodeName,
  type StringColumn,
} from '@netmon/core';
import type { DebugExporterConfig } from './config.js';

/** Where summaries go: stdout by default; logs go to stderr, so the two never interleave in a line. */
export type WriteFn = (text: string) => unknown;

/** Lines of individual flows or lookups printed per interval with verbosity: detailed. */
export const DETAIL_LINES = 1000;
/**
 * Distinct conversations (or questions) tracked per interval. Past it, new ones are summed into one
 * "(other)" entry, so a flood of distinct flows cannot grow the table without limit.
 */
export const MAX_ENTRIES = 100_000;
const OTHER = '(other)';

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp', 132: 'sctp' };

export function protocolName(protocol: number): string {
  return PROTOCOLS[protocol] ?? String(protocol);
}

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 512 → "512 B", 1536 → "1.50 KiB", 3·2^30 → "3.00 GiB". */
export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(2)} ${UNITS[unit]}`;
}

interface Conversation {
  key: string;
  src: string;
  dst: string;
  port: number;
  protocol: number;
  flows: number;
  tx: number;
  rx: number;
  trafficClass: string | undefined;
  /** NaN while no flow of the conversation had a cost. */
  costUsd: number;
}

interface Question {
  key: string;
  lookups: number;
}

/** What arrived during one interval. */
class Interval {
  batches = 0;
  items = 0;
  tx = 0;
  rx = 0;
  first = Number.POSITIVE_INFINITY;
  last = Number.NEGATIVE_INFINITY;
  conversations = new Map<string, Conversation>();
  readonly questions = new Map<string, Question>();
  /** For cumulative sources: the dump time whose counters the interval shows (NaN for deltas). */
  cumulativeAsOf = Number.NaN;
  readonly details: string[] = [];
  detailsLeftOut = 0;
}

/**
 * Prints, every interval, a readable summary of the flows (or DNS lookups) that arrived: counts, bytes,
 * and the top conversations by bytes. For people watching a terminal, not for machines: the format may
 * change between versions.
 */
export class DebugExporter implements Exporter {
  private flows = new Interval();
  private dns = new Interval();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: DebugExporterConfig,
    private readonly write: WriteFn = (text) => process.stdout.write(text),
  ) {}

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.flush(), this.config.interval);
    // A debugging aid must never be what keeps the process alive.
    this.timer.unref();
  }

  export(batch: Batch): void {
    if (batch instanceof FlowBatch) this.addFlows(batch);
    else this.addLookups(batch);
  }

  /** Prints the final, partial interval. */
  shutdown(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  /** Prints what arrived since the previous summary, if anything did, and starts a new interval. */
  flush(): void {
    const flows = this.flows;
    const dns = this.dns;
    this.flows = new Interval();
    this.dns = new Interval();
    let text = '';
    if (flows.batches > 0) text += this.formatFlows(flows);
    if (dns.batches > 0) text += this.formatLookups(dns);
    if (text !== '') this.write(text);
  }

  private addFlows(batch: FlowBatch): void {
    const t = this.flows;
    if (batch.temporality === 'cumulative' && batch.length > 0) {
      // Cumulative counters must not be summed across dumps: a newer dump replaces the older one, and
      // batches of one dump (same time_end) add up.
      const asOf = batch.timeEnd[0];
      if (!(asOf <= t.cumulativeAsOf)) {
        t.batches = 0;
        t.items = 0;
        t.tx = 0;
        t.rx = 0;
        t.conversations = new Map();
        t.cumulativeAsOf = asOf;
      } else if (asOf < t.cumulativeAsOf) return;
    }
    t.batches++;
    t.items += batch.length;
    const srcNs = stringColumn(batch, 'src.k8s.namespace.name');
    const srcPod = stringColumn(batch, 'src.k8s.pod.name');
    const dstNs = stringColumn(batch, 'dst.k8s.namespace.name');
    const dstPod = stringColumn(batch, 'dst.k8s.pod.name');
    const trafficClass = stringColumn(batch, 'traffic.class');
    const cost = numberColumn(batch, 'cost.usd');
    const detailed = this.config.verbosity === 'detailed';
    const { txBytes, rxBytes, timeStart, timeEnd, dstPort, protocol } = batch;
    for (let i = 0; i < batch.length; i++) {
      const tx = txBytes[i];
      const rx = rxBytes[i];
      t.tx += tx;
      t.rx += rx;
      if (timeStart[i] < t.first) t.first = timeStart[i];
      if (timeEnd[i] > t.last) t.last = timeEnd[i];
      const src = podLabel(srcNs, srcPod, i) ?? batch.srcIp(i);
      const dst = podLabel(dstNs, dstPod, i) ?? batch.dstIp(i);
      let key = `${src}|${dst}|${dstPort[i]}|${protocol[i]}`;
      let c = t.conversations.get(key);
      if (c === undefined) {
        const full = t.conversations.size >= MAX_ENTRIES;
        if (full) key = OTHER;
        c = full ? t.conversations.get(OTHER) : undefined;
        if (c === undefined) {
          c = full
            ? {
                key,
                src: OTHER,
                dst: OTHER,
                port: 0,
                protocol: 0,
                flows: 0,
                tx: 0,
                rx: 0,
                trafficClass: undefined,
                costUsd: Number.NaN,
              }
            : {
                key,
                src,
                dst,
                port: dstPort[i],
                protocol: protocol[i],
                flows: 0,
                tx: 0,
                rx: 0,
                trafficClass: undefined,
                costUsd: Number.NaN,
              };
          t.conversations.set(key, c);
        }
      }
      c.flows++;
      c.tx += tx;
      c.rx += rx;
      if (c.trafficClass === undefined && trafficClass && key !== OTHER) c.trafficClass = trafficClass.get(i);
      if (cost) {
        const usd = cost.values[i];
        if (!Number.isNaN(usd)) c.costUsd = Number.isNaN(c.costUsd) ? usd : c.costUsd + usd;
      }
      if (detailed) {
        if (t.details.length < DETAIL_LINES) t.details.push(formatFlow(batch, i));
        else t.detailsLeftOut++;
      }
    }
  }

  private addLookups(batch: DnsBatch): void {
    const t = this.dns;
    t.batches++;
    t.items += batch.length;
    const detailed = this.config.verbosity === 'detailed';
    for (let i = 0; i < batch.length; i++) {
      const time = batch.time[i];
      if (time < t.first) t.first = time;
      if (time > t.last) t.last = time;
      let key = batch.names[batch.question[i]];
      let q = t.questions.get(key);
      if (q === undefined) {
        if (t.questions.size >= MAX_ENTRIES) key = OTHER;
        q = t.questions.get(key);
        if (q === undefined) {
          q = { key, lookups: 0 };
          t.questions.set(key, q);
        }
      }
      q.lookups++;
      if (detailed) {
        if (t.details.length < DETAIL_LINES) t.details.push(formatLookup(batch, i));
        else t.detailsLeftOut++;
      }
    }
  }

  private formatFlows(t: Interval): string {
    const lines = [
      `${this.settings.id} flows ${timeRange(t)}: ${plural(t.batches, 'batch', 'batches')}, ` +
        `${plural(t.items, 'flow', 'flows')}, tx ${humanBytes(t.tx)}, rx ${humanBytes(t.rx)}` +
        (Number.isNaN(t.cumulativeAsOf)
          ? ''
          : ` (cumulative counters as of ${new Date(t.cumulativeAsOf).toISOString()})`),
    ];
    const top = topN(t.conversations.values(), this.config.top, (c) => c.tx + c.rx);
    if (top.length > 0) {
      const withClass = top.some((c) => c.trafficClass !== undefined);
      const withCost = top.some((c) => !Number.isNaN(c.costUsd));
      lines.push(
        `  top ${top.length} of ${plural(t.conversations.size, 'conversation', 'conversations')} by bytes:`,
      );
      const header = ['#', 'SRC', 'DST', 'PORT', 'PROTO', 'FLOWS', 'TX', 'RX', 'TOTAL'];
      if (withClass) header.push('CLASS');
      if (withCost) header.push('COST_USD');
      const rows = top.map((c, k) => {
        const other = c.key === OTHER;
        const row = [
          String(k + 1),
          c.src,
          c.dst,
          other || c.protocol === 1 || c.protocol === 58 ? '-' : String(c.port),
          other ? '-' : protocolName(c.protocol),
          String(c.flows),
          humanBytes(c.tx),
          humanBytes(c.rx),
          humanBytes(c.tx + c.rx),
        ];
        if (withClass) row.push(c.trafficClass ?? '-');
        if (withCost) row.push(Number.isNaN(c.costUsd) ? '-' : c.costUsd.toFixed(6));
        return row;
      });
      const right = header.map((h) => ['#', 'PORT', 'FLOWS', 'TX', 'RX', 'TOTAL', 'COST_USD'].includes(h));
      for (const line of table([header, ...rows], right)) lines.push(`    ${line}`);
    }
    this.appendDetails(lines, t, 'flows');
    return `${lines.join('\n')}\n`;
  }

  private formatLookups(t: Interval): string {
    const lines = [
      `${this.settings.id} dns ${timeRange(t)}: ${plural(t.batches, 'batch', 'batches')}, ` +
        `${plural(t.items, 'lookup', 'lookups')}, ${plural(t.questions.size, 'question', 'questions')}`,
    ];
    const top = topN(t.questions.values(), this.config.top, (q) => q.lookups);
    if (top.length > 0) {
      lines.push(`  top ${top.length} questions by lookups:`);
      const rows = top.map((q, k) => [String(k + 1), q.key, String(q.lookups)]);
      for (const line of table([['#', 'QUESTION', 'LOOKUPS'], ...rows], [true, false, true]))
        lines.push(`    ${line}`);
    }
    this.appendDetails(lines, t, 'lookups');
    return `${lines.join('\n')}\n`;
  }

  private appendDetails(lines: string[], t: Interval, what: string): void {
    if (t.details.length === 0) return;
    lines.push(`  ${what}:`);
    for (const d of t.details) lines.push(`    ${d}`);
    if (t.detailsLeftOut > 0) {
      lines.push(
        `    … ${t.detailsLeftOut} more ${what} not shown (detailed output stops at ${DETAIL_LINES} per interval)`,
      );
    }
  }
}

function stringColumn(batch: FlowBatch, key: string): StringColumn | undefined {
  const col = batch.column(key);
  return col?.kind === 'string' ? col : undefined;
}

function numberColumn(batch: FlowBatch, key: string): NumberColumn | undefined {
  const col = batch.column(key);
  return col?.kind === 'number' ? col : undefined;
}

/** "namespace/pod" when the row has both, else undefined (the caller falls back to the IP). */
function podLabel(
  ns: StringColumn | undefined,
  pod: StringColumn | undefined,
  i: number,
): string | undefined {
  if (ns === undefined || pod === undefined) return undefined;
  const n = ns.codes[i];
  const p = pod.codes[i];
  return n === 0 || p === 0 ? undefined : `${ns.dict[n]}/${pod.dict[p]}`;
}

/** The `limit` largest entries by `size`, largest first, ties by key; one pass, no sort of the whole table. */
function topN<T extends { key: string }>(entries: Iterable<T>, limit: number, size: (e: T) => number): T[] {
  const best: T[] = [];
  const before = (a: T, b: T) => size(a) > size(b) || (size(a) === size(b) && a.key < b.key);
  for (const e of entries) {
    if (best.length === limit && !before(e, best[limit - 1])) continue;
    let at = best.length === limit ? limit - 1 : best.length;
    while (at > 0 && before(e, best[at - 1])) {
      best[at] = best[at - 1];
      at--;
    }
    best[at] = e;
  }
  return best;
}

/** Left- or right-aligned columns, two spaces apart, no trailing spaces. */
function table(rows: string[][], right: boolean[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd(),
  );
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function timeRange(t: Interval): string {
  if (!Number.isFinite(t.first)) return '(no data)';
  return `${new Date(t.first).toISOString()} .. ${new Date(t.last).toISOString()}`;
}

function endpoint(ip: string, port: number, protocol: number): string {
  if (protocol === 1 || protocol === 58) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function formatFlow(batch: FlowBatch, i: number): string {
  const p = batch.protocol[i];
  const attrs = Object.entries(batch.attributes(i))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return (
    `${new Date(batch.timeEnd[i]).toISOString()}  ${protocolName(p)}  ` +
    `${endpoint(batch.srcIp(i), batch.srcPort[i], p)} -> ${endpoint(batch.dstIp(i), batch.dstPort[i], p)}  ` +
    `tx ${humanBytes(batch.txBytes[i])} (${plural(batch.txPackets[i], 'pkt', 'pkts')})  ` +
    `rx ${humanBytes(batch.rxBytes[i])} (${plural(batch.rxPackets[i], 'pkt', 'pkts')})` +
    (attrs === '' ? '' : `  ${attrs}`)
  );
}

/** Mnemonics of the record types questions commonly ask for (IANA DNS parameters); others print as TYPE<n>. */
const DNS_TYPES: Record<number, string> = {
  [DnsType.A]: 'A',
  2: 'NS',
  [DnsType.CNAME]: 'CNAME',
  6: 'SOA',
  12: 'PTR',
  15: 'MX',
  16: 'TXT',
  [DnsType.AAAA]: 'AAAA',
  33: 'SRV',
  64: 'SVCB',
  65: 'HTTPS',
};

const typeName = (type: number) => DNS_TYPES[type] ?? `TYPE${type}`;

/** 0.35 → "0.35 ms", 1500 → "1.50 s". */
export function humanLatency(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/**
 * One lookup: when, the client, the question and its type, the response code and latency (from the query
 * leaving the client to the answer reaching it; unknown when the query was not seen), the answers, then
 * what is known of the rest: the canonical name (the end of the question's CNAME chain), the client's
 * cgroup id and pod UID.
 */
function formatLookup(batch: DnsBatch, i: number): string {
  const lookup = batch.lookup(i);
  const answers = lookup.answers
    .map((a) => `${typeName(a.type)} ${a.ip ?? a.target ?? ''} (ttl ${a.ttl}s)`)
    .join(', ');
  const question = lookup.questionType
    ? `${lookup.question} ${typeName(lookup.questionType)}`
    : lookup.question;
  const latency = lookup.latencyMs === undefined ? 'latency unknown' : `in ${humanLatency(lookup.latencyMs)}`;
  const known: string[] = [];
  if (lookup.canonical) known.push(`canonical=${lookup.canonical}`);
  if (lookup.cgroupId) known.push(`cgroup=${lookup.cgroupId}`);
  if (lookup.podUid) known.push(`pod_uid=${lookup.podUid}`);
  return (
    `${new Date(lookup.time).toISOString()}  ${lookup.clientIp} -> ${question}: ` +
    `${rcodeName(lookup.rcode ?? 0)} ${latency}, ${answers === '' ? 'no answers' : answers}` +
    (known.length === 0 ? '' : `  ${known.join(' ')}`)
  );
}
