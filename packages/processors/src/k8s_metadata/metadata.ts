// What the k8s_metadata extension offers the processors that declare it (k8s_attributes, classify, cost):
// the store, this node's name, and each flow's ends resolved to their owners once per batch.
import { type Extension, type FlowBatch, FlowFlags } from '@netmon/core';
import type { MetadataStore } from './store.js';

export const K8S_METADATA = 'k8s_metadata';

export interface K8sMetadata extends Extension {
  readonly store: MetadataStore;
  /** The node this agent runs on; flows of its pods and its own addresses are local. */
  readonly nodeName: string | undefined;
  /** True when no cluster is watched (configured, or no way to reach one): every flow stays unlabelled. */
  readonly standalone: boolean;
  /**
   * True when the cluster is read from snapshot files, not watched: the flows are being analysed after the
   * fact, usually on another machine, so this machine's own state (its network interfaces) is not that of
   * the node that recorded them.
   */
  readonly offline: boolean;
  /** Pod label keys to keep on pods (k8s_attributes' allow-list). Call before the extension starts. */
  requestPodLabels(keys: readonly string[]): void;
  /** True once every informer has listed its objects at least once. */
  synced(): boolean;
  /** The most common cloud provider among the nodes (aws | gcp | azure | …), if any node says. */
  provider(): string | undefined;
  /** Each row's ends resolved to entity ids (see Resolution); cached per batch while the store is unchanged. */
  resolve(batch: FlowBatch): Resolution;
}

/**
 * Entity ids per row (`store.entity(id)`), -1 when the address belongs to nobody the cluster knows.
 * `peer` is whom the source really talks to: the DNAT backend when the flow was translated and the
 * backend is known, otherwise the destination as dialled.
 */
export interface Resolution {
  length: number;
  src: Int32Array;
  dst: Int32Array;
  peer: Int32Array;
  /** The service the destination belongs to: the dialled ClusterIP or LB IP, or the backend's service. */
  service: Int32Array;
}

const cache = new WeakMap<FlowBatch, { generation: number; store: MetadataStore; resolution: Resolution }>();

export function resolveBatch(store: MetadataStore, batch: FlowBatch): Resolution {
  const hit = cache.get(batch);
  if (
    hit &&
    hit.store === store &&
    hit.generation === store.generation &&
    hit.resolution.length === batch.length
  ) {
    return hit.resolution;
  }
  const n = batch.length;
  const src = new Int32Array(n);
  const dst = new Int32Array(n);
  const peer = new Int32Array(n);
  const service = new Int32Array(n);
  const { srcAddr, dstAddr, backendAddr, backendPort, flags } = batch;
  for (let i = 0; i < n; i++) {
    const off = 16 * i;
    const s = store.lookup(srcAddr, off);
    const d = store.lookup(dstAddr, off);
    src[i] = s === null ? -1 : s.id;
    dst[i] = d === null ? -1 : d.id;
    let p = dst[i];
    let svc = d !== null && d.kind === 'service' ? d.id : -1;
    if (flags[i] & FlowFlags.Dnat) {
      const b = store.lookup(backendAddr, off);
      if (b !== null) p = b.id;
      if (svc === -1) {
        const owner = store.serviceOfBackend(backendAddr, off, backendPort[i]);
        if (owner !== null) svc = owner.id;
      }
    } else if (svc === -1 && d !== null && d.kind === 'pod') {
      // Load balanced before conntrack saw it (Cilium's socket LB, a headless Service): the backend's
      // EndpointSlices still name the Service, by address and port.
      const owner = store.serviceOfBackend(dstAddr, off, batch.dstPort[i]);
      if (owner !== null) svc = owner.id;
    }
    peer[i] = p;
    service[i] = svc;
  }
  const resolution = { length: n, src, dst, peer, service };
  cache.set(batch, { generation: store.generation, store, resolution });
  return resolution;
}
