// Each flow's ends resolved to the cluster's entities, once per batch and store generation: k8s_attributes,
// classify and cost all read the same resolution of a batch. An end the receiver named by pod UID (a local
// socket's cgroup) is that pod whatever its address, so all of them agree that a hostNetwork pod's bytes
// are the pod's, not its node's.
import { type FlowBatch, FlowFlags, type StringColumn } from '@netmon/core';
import { DST_POD_UID, type Resolution, SRC_POD_UID } from './contract.js';
import type { MetadataStore } from './store.js';

const cache = new WeakMap<FlowBatch, { generation: number; store: MetadataStore; resolution: Resolution }>();

/** A UID column's dictionary code not looked up yet. */
const UNRESOLVED = -2;

/**
 * The pod entity id per dictionary code of a UID column (-1: no pod the store knows), keyed by the
 * dictionary: a receiver that shares one across batches, or between its src and dst columns, pays one
 * store lookup per distinct UID while the store is unchanged, not one per batch.
 */
const podsByCode = new WeakMap<string[], { store: MetadataStore; generation: number; ids: Int32Array }>();

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
  const { srcAddr, dstAddr, backendAddr, backendPort, dstPort, flags } = batch;
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
      const owner = store.serviceOfBackend(dstAddr, off, dstPort[i]);
      if (owner !== null) svc = owner.id;
    }
    peer[i] = p;
    service[i] = svc;
  }

  const srcUids = uidColumn(batch, SRC_POD_UID);
  if (srcUids !== undefined) {
    const { codes, dict } = srcUids;
    const ids = podIds(store, dict);
    for (let i = 0; i < n; i++) {
      const code = codes[i];
      if (code === 0) continue;
      let id = ids[code];
      if (id === UNRESOLVED) id = ids[code] = store.podByUid(dict[code])?.id ?? -1;
      if (id >= 0) src[i] = id;
    }
  }
  const dstUids = uidColumn(batch, DST_POD_UID);
  if (dstUids !== undefined) {
    const { codes, dict } = dstUids;
    const ids = podIds(store, dict);
    for (let i = 0; i < n; i++) {
      const code = codes[i];
      if (code === 0) continue;
      let id = ids[code];
      if (id === UNRESOLVED) id = ids[code] = store.podByUid(dict[code])?.id ?? -1;
      if (id < 0) continue;
      // The socket that answered is whom the source reached.
      peer[i] = id;
      // What was dialled is that pod too, unless the address dialled was translated (the socket is the
      // backend's, not the dialled address's) or is a Service's, or a Service endpoint's: those stay what the
      // source dialled (dst.kind service, the API server's endpoint).
      if (flags[i] & FlowFlags.Dnat) continue;
      const d = dst[i];
      const kind = d >= 0 ? store.entity(d)?.kind : undefined;
      if (kind === 'service' || kind === 'endpoint') continue;
      dst[i] = id;
      // Labelled as an address match to that pod would be: the Service whose EndpointSlices list its
      // address and the port dialled (a hostNetwork pod's endpoint is its node's address).
      if (service[i] === -1 && kind !== 'pod') {
        const owner = store.serviceOfBackend(dstAddr, 16 * i, dstPort[i]);
        if (owner !== null) service[i] = owner.id;
      }
    }
  }

  const resolution = { length: n, src, dst, peer, service };
  cache.set(batch, { generation: store.generation, store, resolution });
  return resolution;
}

function uidColumn(batch: FlowBatch, key: string): StringColumn | undefined {
  const column = batch.column(key);
  return column !== undefined && column.kind === 'string' ? column : undefined;
}

/** The per-code answers for `dict`, emptied when the store changed and grown with the dictionary. */
function podIds(store: MetadataStore, dict: string[]): Int32Array {
  let known = podsByCode.get(dict);
  if (known === undefined || known.store !== store) {
    known = { store, generation: store.generation, ids: new Int32Array(Math.max(dict.length, 16)) };
    known.ids.fill(UNRESOLVED);
    podsByCode.set(dict, known);
  } else if (known.generation !== store.generation) {
    known.generation = store.generation;
    known.ids.fill(UNRESOLVED);
  }
  if (known.ids.length < dict.length) {
    const grown = new Int32Array(Math.max(dict.length, known.ids.length * 2)).fill(UNRESOLVED);
    grown.set(known.ids);
    known.ids = grown;
  }
  return known.ids;
}
