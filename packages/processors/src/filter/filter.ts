// Keep/drop by what a flow is, then coarsen attributes. String matchers are evaluated once per distinct
// dictionary value of a batch, so the per-row work is array reads; CIDRs and ports are checked per row.
import { CidrTable, type FlowBatch, type Processor } from '@netmon/core';
import { TRAFFIC_CLASS } from '../classify/classes.js';
import type { FilterConfig, Match } from './config.js';

const ENDS = ['src', 'dst'] as const;

/** Columns removed at each granularity, beyond those of the finer ones. */
const POD_LEVEL = ['k8s.pod.name'];
const POD_LEVEL_PREFIX = 'k8s.pod.label.';
const WORKLOAD_LEVEL = ['k8s.workload.kind', 'k8s.workload.name'];

class CompiledMatch {
  private readonly namespaces?: Set<string>;
  private readonly workloads?: Set<string>;
  private readonly classes?: Set<string>;
  private readonly cidrs?: CidrTable<true>;
  private readonly ports?: Uint8Array;

  constructor(m: Match) {
    if (m.namespaces) this.namespaces = new Set(m.namespaces);
    if (m.workloads) this.workloads = new Set(m.workloads);
    if (m.classes) this.classes = new Set(m.classes);
    if (m.cidrs) {
      const cidrs = new CidrTable<true>();
      this.cidrs = cidrs;
      for (const c of m.cidrs) cidrs.add(c, true);
    }
    if (m.ports) {
      const ports = new Uint8Array(65536);
      this.ports = ports;
      for (const p of m.ports) {
        if (typeof p === 'number') ports[p] = 1;
        else {
          const [lo, hi] = p.split('-').map(Number);
          ports.fill(1, lo, hi + 1);
        }
      }
    }
  }

  /** Sets out[i] = 1 for every row that matches, 0 otherwise. */
  evaluate(batch: FlowBatch, out: Uint8Array): void {
    const n = batch.length;
    out.fill(1, 0, n);
    if (this.namespaces) {
      const set = this.namespaces;
      this.andEither(batch, out, (end) => stringMask(batch, `${end}.k8s.namespace.name`, (v) => set.has(v)));
    }
    if (this.workloads) {
      const set = this.workloads;
      this.andEither(batch, out, (end) => workloadMask(batch, end, set));
    }
    if (this.classes) {
      const set = this.classes;
      const mask = stringMask(batch, TRAFFIC_CLASS, (v) => set.has(v));
      for (let i = 0; i < n; i++) out[i] &= mask === null ? 0 : mask[i];
    }
    if (this.cidrs) {
      const t = this.cidrs;
      for (let i = 0; i < n; i++) {
        if (out[i] === 0) continue;
        const off = 16 * i;
        out[i] =
          t.lookup(batch.srcAddr, off) !== undefined || t.lookup(batch.dstAddr, off) !== undefined ? 1 : 0;
      }
    }
    if (this.ports) {
      const ports = this.ports;
      for (let i = 0; i < n; i++) out[i] &= ports[batch.dstPort[i]];
    }
  }

  private andEither(
    batch: FlowBatch,
    out: Uint8Array,
    mask: (end: 'src' | 'dst') => Uint8Array | null,
  ): void {
    const a = mask('src');
    const b = mask('dst');
    for (let i = 0; i < batch.length; i++) out[i] &= (a === null ? 0 : a[i]) | (b === null ? 0 : b[i]);
  }
}

/** Per row, whether the string attribute `key` satisfies `test` (decided once per dictionary value). */
function stringMask(batch: FlowBatch, key: string, test: (value: string) => boolean): Uint8Array | null {
  const col = batch.column(key);
  if (col?.kind !== 'string') return null;
  const byCode = new Uint8Array(col.dict.length);
  for (let c = 1; c < col.dict.length; c++) byCode[c] = test(col.dict[c]) ? 1 : 0;
  const out = new Uint8Array(batch.length);
  for (let i = 0; i < batch.length; i++) out[i] = byCode[col.codes[i]];
  return out;
}

/** `name`, `Kind/name` or `namespace/Kind/name` against one end's workload. */
function workloadMask(batch: FlowBatch, end: string, set: ReadonlySet<string>): Uint8Array | null {
  const ns = batch.column(`${end}.k8s.namespace.name`);
  const kind = batch.column(`${end}.k8s.workload.kind`);
  const name = batch.column(`${end}.k8s.workload.name`);
  if (name?.kind !== 'string') return null;
  const out = new Uint8Array(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const w = name.get(i);
    if (w === undefined) continue;
    const k = kind?.kind === 'string' ? kind.get(i) : undefined;
    const n = ns?.kind === 'string' ? ns.get(i) : undefined;
    out[i] = set.has(w) || (k !== undefined && (set.has(`${k}/${w}`) || set.has(`${n}/${k}/${w}`))) ? 1 : 0;
  }
  return out;
}

export class FilterProcessor implements Processor<FlowBatch> {
  readonly mutates: boolean;
  private readonly include?: CompiledMatch;
  private readonly exclude?: CompiledMatch;
  private mask = new Uint8Array(0);
  private scratch = new Uint8Array(0);

  constructor(private readonly config: FilterConfig) {
    if (config.include) this.include = new CompiledMatch(config.include);
    if (config.exclude) this.exclude = new CompiledMatch(config.exclude);
    // Only coarsening changes the batch in place; dropping rows makes a new one.
    this.mutates = config.granularity !== 'pod';
  }

  process(batch: FlowBatch): FlowBatch | null {
    let out = batch;
    if (this.include || this.exclude) {
      const n = batch.length;
      if (this.mask.length < n) {
        this.mask = new Uint8Array(n);
        this.scratch = new Uint8Array(n);
      }
      const keep = this.mask;
      if (this.include) this.include.evaluate(batch, keep);
      else keep.fill(1, 0, n);
      if (this.exclude) {
        this.exclude.evaluate(batch, this.scratch);
        for (let i = 0; i < n; i++) keep[i] &= this.scratch[i] ^ 1;
      }
      let kept = 0;
      for (let i = 0; i < n; i++) kept += keep[i];
      if (kept === 0) return null;
      if (kept < n) {
        const rows = new Uint32Array(kept);
        for (let i = 0, j = 0; i < n; i++) if (keep[i]) rows[j++] = i;
        out = batch.select(rows);
      }
    }
    if (this.config.granularity !== 'pod') {
      for (const key of out.attributeKeys()) {
        for (const end of ENDS) {
          if (!key.startsWith(`${end}.`)) continue;
          const rest = key.slice(end.length + 1);
          const podLevel = POD_LEVEL.includes(rest) || rest.startsWith(POD_LEVEL_PREFIX);
          if (podLevel || (this.config.granularity === 'namespace' && WORKLOAD_LEVEL.includes(rest))) {
            out.deleteColumn(key);
          }
        }
      }
    }
    return out;
  }
}
