// Each flow's ends resolved to the cluster's entities, once per batch and store generation: k8s_attributes,
// classify and cost all read the same resolution of a batch.
import { type FlowBatch, FlowFlags } from '@netmon/core';
import type { Resolution } from './contract.js';
import type { MetadataStore } from './store.js';

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
