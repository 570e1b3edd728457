// Labels both ends of every flow with who they are in the cluster. The work per row is two or three IP
// lookups (done once per batch by the extension's resolve) and a copy of precomputed dictionary codes:
// each distinct pod, node or service in a batch has its attribute codes computed once, not per row. An
// end whose pod the receiver named by UID (a local socket's cgroup) is that pod, whatever its address.
import {
  type FlowBatch,
  FlowFlags,
  INITIATOR_KNOWN_ATTRIBUTE,
  type Processor,
  type StringColumn,
} from '@netmon/core';
import type { Entity, K8sMetadata, MetadataStore } from '@netmon/extensions';
import type { K8sAttributesConfig } from './config.js';

type Field = (entity: Entity, store: MetadataStore) => string | undefined;

/** The per-end attributes users see (a stable contract), without the `src.`/`dst.` prefix. */
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

/**
 * Writes a fixed set of string columns from the entity each row resolved to. Each column's values are
 * numbered once, across batches, in an append-only dictionary the batches share (`StringColumn.share`):
 * a row costs a copy of its entity's precomputed codes, and no batch builds a dictionary of its own. With
 * 100k pods nearly every row of a batch is a different pod, so anything done per distinct value and batch
 * would be done per row.
 *
 * An entity's codes are valid while the store is unchanged; after any change each entity is checked again
 * (same object, same version, same nodes) the first time a batch meets it.
 */
export class EntityColumnWriter {
  private readonly width: number;
  /** Per column: value → code in `texts`, which is the shared dictionary (entry 0 '' = absent). */
  private valueCodes: Map<string, number>[];
  private texts: string[][];
  /** Per entity id: the entity and version its codes are for, and the codes (width per entity). */
  private cachedEntity: (Entity | undefined)[] = [];
  private cachedVersion = new Int32Array(0);
  private cachedCodes = new Uint32Array(0);
  /** Per entity id: the store epoch its codes were last checked in. */
  private checked = new Uint32Array(0);
  private epoch = 0;
  private storeGeneration = -1;
  private nodeGeneration = -1;
  /** Per column, for batches whose column already had values: batch code of each of our codes. */
  private translated: Int32Array[];

  constructor(
    private readonly keys: readonly string[],
    private readonly fields: readonly Field[],
  ) {
    this.width = keys.length;
    this.valueCodes = keys.map(() => new Map());
    this.texts = keys.map(() => ['']);
    this.translated = keys.map(() => new Int32Array(0));
  }

  write(batch: FlowBatch, ids: Int32Array, store: MetadataStore): void {
    const n = batch.length;
    const width = this.width;
    const columns: StringColumn[] = this.keys.map((k) => batch.ensureColumn(k, 'string'));
    this.prepare(store);
    const { checked, epoch } = this;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (id < 0) continue;
      if (checked[id] !== epoch) {
        checked[id] = epoch;
        this.refresh(id, store);
      }
    }
    // Our codes index our dictionaries; a column that already holds values (replayed attributes) keeps
    // its own, and our codes are translated into it.
    const own = columns.map((c, k) => {
      if (c.dict === this.texts[k] || c.dict.length === 1) {
        c.share(this.texts[k]);
        return true;
      }
      this.translated[k] = new Int32Array(this.texts[k].length).fill(-1);
      return false;
    });
    const codes = this.cachedCodes;
    for (let c = 0; c < width; c++) {
      const target = columns[c].codes;
      if (own[c]) {
        for (let i = 0; i < n; i++) {
          const id = ids[i];
          if (id >= 0) target[i] = codes[id * width + c];
        }
        continue;
      }
      const column = columns[c];
      const translated = this.translated[c];
      const texts = this.texts[c];
      for (let i = 0; i < n; i++) {
        const id = ids[i];
        if (id < 0) continue;
        const code = codes[id * width + c];
        if (code === 0) {
          // The entity has no such value: a replayed one must not stay beside the entity's others.
          target[i] = 0;
          continue;
        }
        let batchCode = translated[code];
        if (batchCode < 0) batchCode = translated[code] = column.code(texts[code]);
        target[i] = batchCode;
      }
    }
  }

  /** Sizes the caches to the store; a new epoch when the store changed since the last batch. */
  private prepare(store: MetadataStore): void {
    if (this.checked.length < store.idLimit) {
      const size = Math.max(store.idLimit, this.checked.length * 2, 64);
      const checked = new Uint32Array(size);
      checked.set(this.checked);
      this.checked = checked;
      const version = new Int32Array(size).fill(-1);
      version.set(this.cachedVersion);
      this.cachedVersion = version;
      const codes = new Uint32Array(size * this.width);
      codes.set(this.cachedCodes);
      this.cachedCodes = codes;
    }
    let stale = false;
    // Values of entities long gone pile up under churn: start over with new dictionaries (batches still
    // in flight keep the old ones) when one outgrows the store.
    if (this.valueCodes.some((m) => m.size > 4 * this.checked.length + 1024)) {
      this.valueCodes = this.keys.map(() => new Map());
      this.texts = this.keys.map(() => ['']);
      this.cachedEntity = [];
      stale = true;
    }
    if (store.nodeGeneration !== this.nodeGeneration) {
      // Zones and regions come from nodes: a node change invalidates every entity's cached codes.
      this.nodeGeneration = store.nodeGeneration;
      this.cachedEntity = [];
      stale = true;
    }
    if (stale || store.generation !== this.storeGeneration || this.epoch === 0) {
      this.storeGeneration = store.generation;
      if (++this.epoch === 0xffffffff) {
        this.checked.fill(0);
        this.epoch = 1;
      }
    }
  }

  /** Recomputes entity `id`'s codes when it is not the entity (or version) they were made for. */
  private refresh(id: number, store: MetadataStore): void {
    const width = this.width;
    const at = id * width;
    const entity = store.entity(id);
    if (entity === undefined) {
      this.cachedEntity[id] = undefined;
      this.cachedCodes.fill(0, at, at + width);
      return;
    }
    if (this.cachedEntity[id] === entity && this.cachedVersion[id] === entity.version) return;
    for (let c = 0; c < width; c++) {
      const text = this.fields[c](entity, store);
      this.cachedCodes[at + c] = text === undefined ? 0 : this.codeOf(c, text);
    }
    this.cachedEntity[id] = entity;
    this.cachedVersion[id] = entity.version;
  }

  private codeOf(c: number, text: string): number {
    const codes = this.valueCodes[c];
    let code = codes.get(text);
    if (code === undefined) {
      code = this.texts[c].length;
      this.texts[c].push(text);
      codes.set(text, code);
    }
    return code;
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
    // An end the receiver named by pod UID (a local socket's cgroup) is that pod in `res`, whatever its
    // address: the extension resolves it so, for classify and cost too.
    const res = this.metadata.resolve(batch);
    const { src, peer } = res;
    this.src.write(batch, src, store);
    // The destination is whom the source really reached: the pod of the socket that answered, else the
    // DNAT backend when known, else the address dialled.
    this.dst.write(batch, peer, store);

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
    const known = batch.ensureColumn(INITIATOR_KNOWN_ATTRIBUTE, 'bool').values;
    const flags = batch.flags;
    for (let i = 0; i < n; i++) {
      const initiatorKnown = (flags[i] & FlowFlags.InitiatorKnown) !== 0;
      known[i] = initiatorKnown ? 2 : 1;
      // Without the initiator, src is only "the local end": calling it the initiator would be a guess.
      if (nodeName === undefined || !initiatorKnown) continue;
      if (isOn(store, src[i], nodeName)) reporter.codes[i] = initiator;
      else if (isOn(store, peer[i], nodeName) || isOn(store, res.dst[i], nodeName))
        reporter.codes[i] = responder;
    }
    return batch;
  }
}

function isOn(store: MetadataStore, id: number, nodeName: string): boolean {
  return id >= 0 && store.entity(id)?.nodeName === nodeName;
}
