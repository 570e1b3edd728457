// Labels both ends of every flow with who they are in the cluster. The work per row is two or three IP
// lookups (done once per batch by the extension's resolve) and a copy of precomputed dictionary codes:
// each distinct pod, node or service in a batch has its attribute codes computed once, not per row.
import { type FlowBatch, FlowFlags, type Processor, type StringColumn } from '@netmon/core';
import type { K8sMetadata } from '../k8s_metadata/metadata.js';
import type { Entity, MetadataStore } from '../k8s_metadata/store.js';
import type { K8sAttributesConfig } from './config.js';

type Field = (entity: Entity, store: MetadataStore) => string | undefined;

/** The per-end attributes (DESIGN.md "Names users see"), without the `src.`/`dst.` prefix. */
const END_FIELDS: [string, Field][] = [
  ['k8s.namespace.name', (e) => e.namespace],
  ['k8s.pod.name', (e) => e.pod],
  ['k8s.workload.kind', (e) => e.workloadKind],
  ['k8s.workload.name', (e) => e.workloadName],
  ['k8s.node.name', (e) => e.nodeName],
  ['cloud.availability_zone', (e, s) => s.zoneOf(e)],
  ['cloud.region', (e, s) => s.regionOf(e)],
];

export const REPORTER = 'flow.reporter';
export const INITIATOR_KNOWN = 'flow.initiator_known';

/**
 * Writes a fixed set of string columns from the entity each row resolved to. Three levels of caching keep
 * the per-row work to typed-array copies:
 * - per entity, across batches: the id of each field's value (valid while the entity object, its version
 *   and the nodes are unchanged);
 * - per batch and column: the batch code of each value id, appended to the batch's dictionary on first use
 *   (no hash lookup: value ids and strings correspond one to one);
 * - per batch: each distinct entity's codes, copied to every row of that entity.
 */
export class EntityColumnWriter {
  private readonly width: number;
  /** Per column: value → value id, and back. */
  private readonly valueIds: Map<string, number>[];
  private readonly valueTexts: string[][];
  /** Per column: the batch code of each value id, valid when its stamp is this batch's epoch. */
  private valueStamps: Uint32Array[];
  private valueCodes: Uint32Array[];
  /** Per entity id: the entity and version the cached value ids are for, and the ids (-1 absent). */
  private cachedEntity: (Entity | undefined)[] = [];
  private cachedVersion = new Int32Array(0);
  private cachedValues = new Int32Array(0);
  private nodeGeneration = -1;
  /** Per entity id: whether its codes are computed in this batch, and where. */
  private stamp = new Uint32Array(0);
  private local = new Int32Array(0);
  private epoch = 0;
  private codes = new Uint32Array(0);

  constructor(
    private readonly keys: readonly string[],
    private readonly fields: readonly Field[],
  ) {
    this.width = keys.length;
    this.valueIds = keys.map(() => new Map());
    this.valueTexts = keys.map(() => []);
    this.valueStamps = keys.map(() => new Uint32Array(64));
    this.valueCodes = keys.map(() => new Uint32Array(64));
  }

  write(batch: FlowBatch, ids: Int32Array, store: MetadataStore): void {
    const n = batch.length;
    const width = this.width;
    const columns: StringColumn[] = this.keys.map((k) => batch.ensureColumn(k, 'string'));
    // A column that already has values (replayed attributes) may hold our strings: look them up there.
    const fresh = columns.map((c) => c.dict.length === 1);
    const targets = columns.map((c) => c.codes);
    this.prepare(store);
    const { stamp, local, epoch } = this;
    let distinct = 0;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (id < 0) continue;
      if (stamp[id] !== epoch) {
        const entity = store.entity(id);
        if (entity === undefined) continue;
        stamp[id] = epoch;
        local[id] = distinct;
        if (this.codes.length < (distinct + 1) * width) {
          const grown = new Uint32Array(Math.max(64, (distinct + 1) * width * 2));
          grown.set(this.codes);
          this.codes = grown;
        }
        const values = this.valuesOf(entity, store);
        for (let c = 0; c < width; c++) {
          const v = this.cachedValues[values + c];
          let code = 0;
          if (v >= 0) {
            if (this.valueStamps[c][v] === epoch) code = this.valueCodes[c][v];
            else {
              const text = this.valueTexts[c][v];
              code = fresh[c] ? columns[c].append(text) : columns[c].code(text);
              this.valueStamps[c][v] = epoch;
              this.valueCodes[c][v] = code;
            }
          }
          this.codes[distinct * width + c] = code;
        }
        distinct++;
      }
      const base = local[id] * width;
      for (let c = 0; c < width; c++) targets[c][i] = this.codes[base + c];
    }
  }

  /** Sizes the caches to the store and starts a batch. */
  private prepare(store: MetadataStore): void {
    if (this.stamp.length < store.idLimit) {
      const size = Math.max(store.idLimit, this.stamp.length * 2, 64);
      this.stamp = new Uint32Array(size);
      this.local = new Int32Array(size);
      const version = new Int32Array(size).fill(-1);
      version.set(this.cachedVersion);
      this.cachedVersion = version;
      const values = new Int32Array(size * this.width);
      values.set(this.cachedValues);
      this.cachedValues = values;
      // The epoch keeps counting: valueStamps are not resized here and must not match a restarted epoch.
    }
    // Values of entities long gone pile up under churn: start over, between batches, when a value table
    // outgrows the store (never within a batch, where appended codes must stay one per value).
    if (this.valueIds.some((ids) => ids.size > 4 * this.stamp.length + 1024)) {
      for (let c = 0; c < this.width; c++) {
        this.valueIds[c].clear();
        this.valueTexts[c].length = 0;
        this.valueStamps[c].fill(0);
      }
      this.cachedEntity = [];
    }
    if (store.nodeGeneration !== this.nodeGeneration) {
      // Zones and regions come from nodes: a node change invalidates every entity's cached values.
      this.nodeGeneration = store.nodeGeneration;
      this.cachedEntity = [];
    }
    if (++this.epoch === 0xffffffff) {
      this.stamp.fill(0);
      for (const s of this.valueStamps) s.fill(0);
      this.epoch = 1;
    }
  }

  /** Offset of the entity's value ids in cachedValues, computing them when the entity changed. */
  private valuesOf(entity: Entity, store: MetadataStore): number {
    const id = entity.id;
    const at = id * this.width;
    if (this.cachedEntity[id] === entity && this.cachedVersion[id] === entity.version) return at;
    for (let c = 0; c < this.width; c++) {
      const text = this.fields[c](entity, store);
      this.cachedValues[at + c] = text === undefined ? -1 : this.valueId(c, text);
    }
    this.cachedEntity[id] = entity;
    this.cachedVersion[id] = entity.version;
    return at;
  }

  private valueId(c: number, text: string): number {
    const ids = this.valueIds[c];
    let v = ids.get(text);
    if (v === undefined) {
      v = ids.size;
      ids.set(text, v);
      this.valueTexts[c].push(text);
      if (v >= this.valueStamps[c].length) {
        const stamps = new Uint32Array(this.valueStamps[c].length * 2);
        stamps.set(this.valueStamps[c]);
        this.valueStamps[c] = stamps;
        const codes = new Uint32Array(this.valueCodes[c].length * 2);
        codes.set(this.valueCodes[c]);
        this.valueCodes[c] = codes;
      }
    }
    return v;
  }
}

export class K8sAttributesProcessor implements Processor<FlowBatch> {
  readonly mutates = true;
  private readonly src: EntityColumnWriter;
  private readonly dst: EntityColumnWriter;
  private readonly service = new EntityColumnWriter(['dst.k8s.service.name'], [(e) => e.service]);
  private serviceIds = new Int32Array(0);

  constructor(
    private readonly metadata: K8sMetadata,
    config: K8sAttributesConfig,
  ) {
    metadata.requestPodLabels(config.pod_labels);
    const fields: [string, Field][] = [
      ...END_FIELDS,
      ...config.pod_labels.map((key): [string, Field] => [`k8s.pod.label.${key}`, (e) => e.labels?.[key]]),
    ];
    this.src = new EntityColumnWriter(
      fields.map(([k]) => `src.${k}`),
      fields.map(([, f]) => f),
    );
    this.dst = new EntityColumnWriter(
      fields.map(([k]) => `dst.${k}`),
      fields.map(([, f]) => f),
    );
  }

  process(batch: FlowBatch): FlowBatch {
    const n = batch.length;
    if (n === 0 || this.metadata.standalone) return batch;
    const { store, nodeName } = this.metadata;
    const res = this.metadata.resolve(batch);
    this.src.write(batch, res.src, store);
    // The destination is whom the source really reached: the DNAT backend when known.
    this.dst.write(batch, res.peer, store);

    // The service: the dialled ClusterIP's, the backend's, or the selector-less endpoint's.
    if (this.serviceIds.length < n) this.serviceIds = new Int32Array(Math.max(n, this.serviceIds.length * 2));
    const serviceIds = this.serviceIds;
    for (let i = 0; i < n; i++) {
      let id = res.service[i];
      if (id < 0) {
        const d = res.dst[i] >= 0 ? store.entity(res.dst[i]) : undefined;
        if (d?.kind === 'endpoint') id = d.id;
      }
      serviceIds[i] = id;
    }
    this.service.write(batch, serviceIds, store);

    // Which end is on this node: the initiator (src) or the responder (dst, as dialled or its backend).
    const reporter = batch.ensureColumn(REPORTER, 'string');
    const initiator = reporter.code('initiator');
    const responder = reporter.code('responder');
    const known = batch.ensureColumn(INITIATOR_KNOWN, 'bool').values;
    const flags = batch.flags;
    for (let i = 0; i < n; i++) {
      known[i] = flags[i] & FlowFlags.InitiatorKnown ? 2 : 1;
      if (nodeName === undefined) continue;
      if (isOn(store, res.src[i], nodeName)) reporter.codes[i] = initiator;
      else if (isOn(store, res.peer[i], nodeName) || isOn(store, res.dst[i], nodeName))
        reporter.codes[i] = responder;
    }
    return batch;
  }
}

function isOn(store: MetadataStore, id: number, nodeName: string): boolean {
  return id >= 0 && store.entity(id)?.nodeName === nodeName;
}
