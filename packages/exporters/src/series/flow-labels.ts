// The labels of flow series as FlowSeries reads them: most straight from an attribute column, some computed
// per batch from the batch's own columns (protocol, destination port) or through a top N (domain, prefix).
// Computed labels hand FlowSeries the same shape as an attribute column — a code per row and a dictionary —
// so one path turns both into series, with no object per flow.
import { dnsName, type FlowBatch, FlowFlags, type Granularity, StringColumn } from '@netmon/core';
import {
  DEFAULT_FLOW_LABEL_SELECTION,
  type FlowLabelSelection,
  type LabelSpec,
  selectedLabels,
} from './selection-config.js';
import { PrefixTopN, StringTopN } from './top-n.js';

/** A batch's values of a computed label: per row a code (0 = no value), spelt by `dict`. */
export interface LabelColumn {
  readonly codes: Uint8Array | Uint16Array | Uint32Array;
  readonly dict: readonly string[];
}

/** Computes a label for every row of a batch; stateful labels (top N) learn from each batch. */
export interface LabelReader {
  read(batch: FlowBatch, now: number): LabelColumn | undefined;
}

/** One label of a flow series: its Prometheus name and the flow attribute it comes from. */
export interface FlowLabel {
  name: string;
  key: string;
  /** Applied to each value before it is summed on (one series per DNS name, not per spelling). */
  normalize?: (value: string) => string;
  /** Computes the values instead of reading the attribute column `key`. */
  reader?: LabelReader;
  /** An integer (the OTLP attribute is sent as an int). */
  numeric?: boolean;
  /** The top N behind the label, for tests and status. */
  topN?: PrefixTopN | StringTopN;
}

export interface FlowLabelOptions {
  /**
   * The exporter's expiration (ms): a top-N value stays at least twice this once admitted, and the ranking
   * decays with this half-life, so a replaced value's series have expired before its slot can change again.
   */
  expirationMs?: number;
}

const DEFAULT_EXPIRATION_MS = 300_000;

/**
 * The labels of flow series at a granularity with a selection (defaults: see selection-config.ts), in the
 * catalogue's order. Each call makes new readers: a top N belongs to one table.
 */
export function flowLabels(
  granularity: Granularity,
  selection: FlowLabelSelection = DEFAULT_FLOW_LABEL_SELECTION,
  options: FlowLabelOptions = {},
): FlowLabel[] {
  const expiration = options.expirationMs ?? DEFAULT_EXPIRATION_MS;
  const ranking = { holdMs: 2 * expiration, halfLifeMs: expiration };
  const hasDomain = selectedLabels(granularity, selection).some((l) => l.source === 'domain');
  return selectedLabels(granularity, selection).map((spec) => make(spec, selection, ranking, hasDomain));
}

function make(
  spec: LabelSpec,
  selection: FlowLabelSelection,
  ranking: { holdMs: number; halfLifeMs: number },
  hasDomain: boolean,
): FlowLabel {
  const label: FlowLabel = { name: spec.name, key: spec.key };
  if (spec.numeric) label.numeric = true;
  switch (spec.source) {
    case 'attribute':
      break;
    case 'protocol':
      label.reader = PROTOCOL;
      break;
    case 'port':
      label.reader = new PortReader();
      break;
    case 'domain': {
      const reader = new DomainReader(new StringTopN({ n: selection.dst_domain.top, ...ranking }));
      label.reader = reader;
      label.topN = reader.top;
      break;
    }
    case 'prefix': {
      const p = selection.dst_prefix;
      const top = new PrefixTopN({ n: p.top, ...ranking }, p.ipv4_prefix_length, p.ipv6_prefix_length);
      // Without a dst_domain label the prefix must name every external destination, named or not.
      label.reader = new PrefixReader(top, p.with_domain || !hasDomain);
      label.topN = top;
      break;
    }
  }
  return label;
}

/** dst.kind values whose destination is in the cluster. */
const IN_CLUSTER: ReadonlySet<string> = new Set(['pod', 'service', 'node', 'endpoint']);
/** dst.kind values whose destination is outside the cluster. */
const EXTERNAL: ReadonlySet<string> = new Set(['external_public', 'external_private']);

/** Per code of the batch's dst.kind column: 1 when the kind is in `kinds`. Undefined without the column. */
function kindMask(
  batch: FlowBatch,
  kinds: ReadonlySet<string>,
): { mask: Uint8Array; codes: Uint32Array } | undefined {
  const col = batch.column('dst.kind');
  if (!(col instanceof StringColumn)) return undefined;
  const mask = new Uint8Array(col.dict.length);
  let any = false;
  for (let c = 1; c < col.dict.length; c++) {
    if (kinds.has(col.dict[c])) {
      mask[c] = 1;
      any = true;
    }
  }
  return any ? { mask, codes: col.codes } : undefined;
}

/** A per-batch code array, reused while batches fit. */
class Scratch {
  private codes = new Uint32Array(0);
  take(n: number): Uint32Array {
    if (this.codes.length < n) this.codes = new Uint32Array(Math.max(n, 2 * this.codes.length));
    const c = this.codes.subarray(0, n);
    c.fill(0);
    return c;
  }
}

/**
 * The IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP): the batch's own column is the code,
 * and the dictionary spells 1–255 (0, never a flow's protocol, is no value).
 */
const PROTOCOL_NAMES: readonly string[] = Array.from({ length: 256 }, (_, p) => (p === 0 ? '' : String(p)));
const PROTOCOL: LabelReader = {
  read: (batch) => ({ codes: batch.protocol.subarray(0, batch.length), dict: PROTOCOL_NAMES }),
};

/** Protocols whose flows have ports (TCP, UDP, DCCP, SCTP, UDP-Lite); ICMP's "ports" are ids and types. */
const PORTED = new Uint8Array(256);
for (const p of [6, 17, 33, 132, 136]) PORTED[p] = 1;

/**
 * The destination port of flows to in-cluster destinations (dst.kind pod, service, node, endpoint): a
 * Service's or pod's listening port, few per destination. Left out where it could be a client's ephemeral
 * port — when the receiver knew only the local and remote ends, not who dialled — and for external
 * destinations, where dst_prefix names them. The dictionary grows by one string per port first seen (65,535
 * at most) and keeps its codes, so a table's lookups of it last across batches.
 */
class PortReader implements LabelReader {
  private readonly codeOf = new Int32Array(65536);
  private readonly dict: string[] = [''];
  private readonly scratch = new Scratch();

  read(batch: FlowBatch, _now: number): LabelColumn | undefined {
    const kinds = kindMask(batch, IN_CLUSTER);
    if (!kinds) return undefined;
    const n = batch.length;
    const codes = this.scratch.take(n);
    const { protocol, dstPort, flags } = batch;
    for (let i = 0; i < n; i++) {
      if (kinds.mask[kinds.codes[i]] === 0 || PORTED[protocol[i]] === 0) continue;
      const f = flags[i];
      if ((f & FlowFlags.LocalRemote) !== 0 && (f & FlowFlags.InitiatorKnown) === 0) continue;
      const port = dstPort[i];
      if (port === 0) continue;
      let code = this.codeOf[port];
      if (code === 0) {
        code = this.dict.length;
        this.dict.push(String(port));
        this.codeOf[port] = code;
      }
      codes[i] = code;
    }
    return { codes, dict: this.dict };
  }
}

/**
 * dst.domain as dnsName spells it, kept for the top N domains by bytes (both directions), "other" for the
 * rest. Each distinct domain of a batch is offered once, with the bytes of all its rows.
 */
class DomainReader implements LabelReader {
  private readonly scratch = new Scratch();
  /** Per dictionary code of the batch: its rows' bytes, whether a row uses it, and its rows' code. */
  private weights = new Float64Array(0);
  private used = new Uint8Array(0);
  private codeOf = new Uint32Array(0);
  private names: (string | undefined)[] = [];
  private namesOf?: readonly string[];

  constructor(readonly top: StringTopN) {}

  read(batch: FlowBatch, now: number): LabelColumn | undefined {
    const col = batch.column('dst.domain');
    if (!(col instanceof StringColumn)) return undefined;
    const top = this.top;
    top.review(now);
    const dict = col.dict;
    const size = dict.length;
    if (this.weights.length < size) {
      const cap = Math.max(size, 2 * this.weights.length);
      this.weights = new Float64Array(cap);
      this.used = new Uint8Array(cap);
      this.codeOf = new Uint32Array(cap);
    }
    // Names are spelt once per dictionary entry while the dictionary (a shared one) stays the same.
    if (this.namesOf !== dict) {
      this.names = [];
      this.namesOf = dict;
    }
    const { weights, used, codeOf } = this;
    weights.fill(0, 0, size);
    used.fill(0, 0, size);
    const n = batch.length;
    const src = col.codes;
    const { txBytes, rxBytes } = batch;
    for (let i = 0; i < n; i++) {
      const c = src[i];
      weights[c] += txBytes[i] + rxBytes[i];
      used[c] = 1;
    }
    for (let c = 1; c < size; c++) {
      if (used[c] === 0) continue;
      let name = this.names[c];
      if (name === undefined) name = this.names[c] = dnsName(dict[c]);
      codeOf[c] = top.offer(name, weights[c], now);
    }
    const out = this.scratch.take(n);
    for (let i = 0; i < n; i++) {
      const c = src[i];
      if (c !== 0) out[i] = codeOf[c];
    }
    return { codes: out, dict: top.dict };
  }
}

/**
 * The destination address cut to a prefix, for external destinations (dst.kind external_public or
 * external_private), kept for the top N prefixes by bytes (both directions), "other" for the rest. Unless
 * `withDomain`, only for rows without a dst.domain: a named destination is told apart by its name.
 */
class PrefixReader implements LabelReader {
  private readonly scratch = new Scratch();

  constructor(
    readonly top: PrefixTopN,
    private readonly withDomain: boolean,
  ) {}

  read(batch: FlowBatch, now: number): LabelColumn | undefined {
    const kinds = kindMask(batch, EXTERNAL);
    if (!kinds) return undefined;
    const domain = this.withDomain ? undefined : batch.column('dst.domain');
    const named = domain instanceof StringColumn ? domain.codes : undefined;
    const top = this.top;
    top.review(now);
    const n = batch.length;
    const codes = this.scratch.take(n);
    const { dstAddr, txBytes, rxBytes } = batch;
    for (let i = 0; i < n; i++) {
      if (kinds.mask[kinds.codes[i]] === 0) continue;
      if (named && named[i] !== 0) continue;
      codes[i] = top.offer(dstAddr, 16 * i, txBytes[i] + rxBytes[i], now);
    }
    return { codes, dict: top.dict };
  }
}

/** For /status: the labels' names, and per top-N label how many values are named and how many were replaced. */
export function labelFacts(labels: readonly FlowLabel[]): {
  labels: string[];
  top_n: Record<string, { named: number; top: number; replaced: number }>;
} {
  const top_n: Record<string, { named: number; top: number; replaced: number }> = {};
  for (const l of labels) {
    if (l.topN) top_n[l.name] = { named: l.topN.admitted, top: l.topN.n, replaced: l.topN.replaced };
  }
  return { labels: labels.map((l) => l.name), top_n };
}
