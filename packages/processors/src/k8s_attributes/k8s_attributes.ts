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
 * Writes a fixed set of string columns from the entity each row resolved to. Codes are computed once per
 * distinct entity per batch (stamped by entity id), then copied per row: typed-array work only.
 */
export class EntityColumnWriter {
  private stamp = new Uint32Array(0);
  private local = new Int32Array(0);
  private epoch = 0;
  private codes = new Uint32Array(0);

  constructor(
    private readonly keys: readonly string[],
    private readonly fields: readonly Field[],
  ) {}

  write(batch: FlowBatch, ids: Int32Array, store: MetadataStore): void {
    const n = batch.length;
    const width = this.keys.length;
    const columns: StringColumn[] = this.keys.map((k) => batch.ensureColumn(k, 'string'));
    const targets = columns.map((c) => c.codes);
    if (this.stamp.length < store.idLimit) {
      const size = Math.max(store.idLimit, this.stamp.length * 2, 64);
      this.stamp = new Uint32Array(size);
      this.local = new Int32Array(size);
      this.epoch = 0;
    }
    if (++this.epoch === 0xffffffff) {
      this.stamp.fill(0);
      this.epoch = 1;
    }
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
        for (let c = 0; c < width; c++) {
          const value = this.fields[c](entity, store);
          this.codes[distinct * width + c] = value === undefined ? 0 : columns[c].code(value);
        }
        distinct++;
      }
      const base = local[id] * width;
      for (let c = 0; c < width; c++) targets[c][i] = this.codes[base + c];
    }
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
