// resolveBatch: ends by address, and ends a receiver named by pod UID (a local socket's cgroup), which win
// over the address wherever that is the truth: k8s_attributes, classify and cost all read this.
import { FlowBatch, FlowFlags, type FlowInit } from '@netmon/core';
import { describe, expect, it, vi } from 'vitest';
import { DST_POD_UID, SRC_POD_UID } from './contract.js';
import { resolveBatch } from './resolve.js';
import { MetadataStore, type PodRecord } from './store.js';

const IP = {
  node: '10.0.1.10',
  web: '10.1.1.5',
  webService: '10.96.0.10',
  apiEndpoint: '10.0.0.100',
  internet: '8.8.8.8',
};

const pod = (p: Partial<PodRecord> & Pick<PodRecord, 'uid' | 'name'>): PodRecord => ({
  namespace: 'shop',
  nodeName: 'node-a',
  phase: 'Running',
  hostNetwork: false,
  ips: [],
  workloadKind: 'Pod',
  workloadName: p.name,
  labels: {},
  ...p,
});

/** node-a; web behind a ClusterIP; a hostNetwork exporter behind a Service; a static kube-apiserver. */
function cluster(): MetadataStore {
  const s = new MetadataStore();
  s.upsertNode({ name: 'node-a', ips: [IP.node], podCidrs: ['10.1.1.0/24'] });
  s.upsertPod(pod({ uid: 'u-web', name: 'web-1', ips: [IP.web], workloadKind: 'Deployment' }));
  s.upsertPod(
    pod({
      uid: 'u-exporter',
      name: 'node-exporter-q7x2k',
      namespace: 'monitoring',
      hostNetwork: true,
      ips: [IP.node],
      workloadKind: 'DaemonSet',
      workloadName: 'node-exporter',
    }),
  );
  // A kubeadm static pod: the API shows its mirror pod, whose uid is not the one the kubelet runs it under.
  s.upsertPod(
    pod({
      uid: 'e2c47a9d-1f5b-4c8e-b3a6-9d0f2e7c1b55',
      name: 'kube-apiserver-node-a',
      namespace: 'kube-system',
      hostNetwork: true,
      ips: [IP.node],
      workloadKind: 'Node',
      workloadName: 'node-a',
      configHash: 'a3e9d1c57b2f48e6901c4d8b7e2a5f13',
    }),
  );
  s.upsertService({
    namespace: 'shop',
    name: 'web',
    type: 'ClusterIP',
    clusterIps: [IP.webService],
    loadBalancerIps: [],
  });
  s.upsertEndpointSlice({
    namespace: 'shop',
    name: 'web-x',
    service: 'web',
    ports: [8080],
    endpoints: [{ ips: [IP.web], podRef: 'u-web' }],
  });
  s.upsertService({
    namespace: 'monitoring',
    name: 'node-exporter',
    type: 'ClusterIP',
    clusterIps: [],
    loadBalancerIps: [],
  });
  s.upsertEndpointSlice({
    namespace: 'monitoring',
    name: 'node-exporter-x',
    service: 'node-exporter',
    ports: [9100],
    endpoints: [{ ips: [IP.node], podRef: 'u-exporter' }],
  });
  s.upsertService({
    namespace: 'default',
    name: 'kubernetes',
    type: 'ClusterIP',
    clusterIps: ['10.96.0.1'],
    loadBalancerIps: [],
  });
  s.upsertEndpointSlice({
    namespace: 'default',
    name: 'kubernetes',
    service: 'kubernetes',
    ports: [6443],
    endpoints: [{ ips: [IP.apiEndpoint] }],
  });
  return s;
}

const flow = (src: string, dst: string, extra: Partial<FlowInit> = {}): FlowInit => ({
  timeStart: 0,
  timeEnd: 5000,
  protocol: 6,
  srcIp: src,
  srcPort: 40000,
  dstIp: dst,
  dstPort: 443,
  txBytes: 1,
  rxBytes: 1,
  flags: FlowFlags.InitiatorKnown,
  ...extra,
});
const uid = (src?: string, dst?: string) => ({
  attributes: { ...(src ? { [SRC_POD_UID]: src } : {}), ...(dst ? { [DST_POD_UID]: dst } : {}) },
});

/** Each end of row i as "kind:name", for one readable assertion per row. */
function ends(store: MetadataStore, batch: FlowBatch) {
  const r = resolveBatch(store, batch);
  const name = (id: number) => {
    if (id < 0) return null;
    const e = store.entity(id);
    return e === undefined ? `gone:${id}` : `${e.kind}:${e.pod ?? e.service ?? e.nodeName}`;
  };
  return Array.from({ length: batch.length }, (_, i) => ({
    src: name(r.src[i]),
    dst: name(r.dst[i]),
    peer: name(r.peer[i]),
    service: name(r.service[i]),
  }));
}

describe('resolveBatch: ends named by pod UID', () => {
  it('a hostNetwork pod named by UID is that pod at either end; its address alone is its node', () => {
    const s = cluster();
    const rows = ends(
      s,
      FlowBatch.from([
        flow(IP.web, IP.node, { dstPort: 9100, ...uid(undefined, 'u-exporter') }),
        flow(IP.web, IP.node, { dstPort: 9100 }),
        flow(IP.node, IP.internet, uid('u-exporter')),
        flow(IP.node, IP.internet),
      ]),
    );
    // Scraped by UID: the pod, and the Service whose EndpointSlice lists its address and port.
    expect(rows[0]).toEqual({
      src: 'pod:web-1',
      dst: 'pod:node-exporter-q7x2k',
      peer: 'pod:node-exporter-q7x2k',
      service: 'service:node-exporter',
    });
    expect(rows[1]).toEqual({ src: 'pod:web-1', dst: 'node:node-a', peer: 'node:node-a', service: null });
    expect(rows[2]).toEqual({ src: 'pod:node-exporter-q7x2k', dst: null, peer: null, service: null });
    expect(rows[3]).toEqual({ src: 'node:node-a', dst: null, peer: null, service: null });
  });

  it('a UID the store does not know, or none on a row, leaves the address’s answer', () => {
    const s = cluster();
    const rows = ends(
      s,
      FlowBatch.from([
        flow(IP.node, IP.web, { dstPort: 8080, ...uid('u-gone', 'u-nobody') }),
        flow(IP.node, IP.web, { dstPort: 8080, ...uid('u-exporter') }),
      ]),
    );
    expect(rows[0]).toEqual({
      src: 'node:node-a',
      dst: 'pod:web-1',
      peer: 'pod:web-1',
      service: 'service:web',
    });
    expect(rows[1]).toEqual({
      src: 'pod:node-exporter-q7x2k',
      dst: 'pod:web-1',
      peer: 'pod:web-1',
      service: 'service:web',
    });
  });

  it('the UID names whom the source reached; a Service, a Service’s endpoint or a translated address stays what was dialled', () => {
    const s = cluster();
    const rows = ends(
      s,
      FlowBatch.from([
        // Dialled a ClusterIP: dst.kind stays service; the answering socket is the peer.
        flow(IP.web, IP.webService, { dstPort: 80, ...uid(undefined, 'u-web') }),
        // The API server's endpoint (not a node address here), answered by the static pod's socket.
        flow(IP.web, IP.apiEndpoint, {
          dstPort: 6443,
          ...uid(undefined, 'a3e9d1c57b2f48e6901c4d8b7e2a5f13'),
        }),
        // A NodePort translated to web: the node was dialled, web answered.
        flow(IP.internet, IP.node, {
          dstPort: 30080,
          flags: FlowFlags.InitiatorKnown | FlowFlags.Dnat,
          backendIp: IP.web,
          backendPort: 8080,
          ...uid(undefined, 'u-web'),
        }),
      ]),
    );
    expect(rows[0]).toEqual({
      src: 'pod:web-1',
      dst: 'service:web',
      peer: 'pod:web-1',
      service: 'service:web',
    });
    expect(rows[1]).toEqual({
      src: 'pod:web-1',
      dst: 'endpoint:kubernetes',
      peer: 'pod:kube-apiserver-node-a',
      service: null,
    });
    expect(rows[2]).toEqual({ src: null, dst: 'node:node-a', peer: 'pod:web-1', service: 'service:web' });
  });

  it('a static pod named by the UID the kubelet runs it under (its cgroup’s) is its mirror pod', () => {
    const s = cluster();
    const rows = ends(
      s,
      FlowBatch.from([
        flow(IP.node, IP.internet, uid('a3e9d1c57b2f48e6901c4d8b7e2a5f13')),
        flow(IP.web, IP.node, { dstPort: 6443, ...uid(undefined, 'a3e9d1c57b2f48e6901c4d8b7e2a5f13') }),
      ]),
    );
    expect(rows[0].src).toBe('pod:kube-apiserver-node-a');
    expect(rows[1]).toMatchObject({ dst: 'pod:kube-apiserver-node-a', peer: 'pod:kube-apiserver-node-a' });
  });

  it('looks each UID up once per dictionary code, across batches sharing the dictionary while the store is unchanged', () => {
    const s = cluster();
    const lookups = vi.spyOn(s, 'podByUid');
    // One dictionary for both columns and every batch, as a receiver may keep it.
    const uids = ['', 'u-exporter', 'u-web', 'u-unknown'];
    const batch = (n: number) => {
      const flows: FlowInit[] = [];
      for (let i = 0; i < n; i++) flows.push(flow(IP.node, IP.web, { dstPort: 8080 }));
      const b = FlowBatch.from(flows);
      const srcCol = b.ensureColumn(SRC_POD_UID, 'string');
      const dstCol = b.ensureColumn(DST_POD_UID, 'string');
      srcCol.share(uids);
      dstCol.share(uids);
      for (let i = 0; i < n; i++) {
        srcCol.codes[i] = i % 4; // none, exporter, web, unknown
        dstCol.codes[i] = 2;
      }
      return b;
    };
    const first = batch(1000);
    const r = resolveBatch(s, first);
    expect(lookups).toHaveBeenCalledTimes(3);
    lookups.mockClear();
    expect(s.entity(r.src[0])?.kind).toBe('node');
    expect(s.entity(r.src[1])?.pod).toBe('node-exporter-q7x2k');
    expect(s.entity(r.src[2])?.pod).toBe('web-1');
    expect(s.entity(r.src[3])?.kind).toBe('node');
    expect(s.entity(r.dst[999])?.pod).toBe('web-1');

    // A second batch over the same dictionary: no lookup at all.
    resolveBatch(s, batch(1000));
    expect(lookups).not.toHaveBeenCalled();
    // The dictionary grows: only the new code is looked up.
    uids.push('a3e9d1c57b2f48e6901c4d8b7e2a5f13');
    const grown = batch(4);
    grown.ensureColumn(SRC_POD_UID, 'string').codes[0] = 4;
    expect(s.entity(resolveBatch(s, grown).src[0])?.pod).toBe('kube-apiserver-node-a');
    expect(lookups).toHaveBeenCalledTimes(1);
    lookups.mockClear();

    // The store changes: the answers are asked again, and a deleted pod falls back to its address.
    s.deletePod('u-exporter');
    const after = resolveBatch(s, batch(4));
    expect(lookups).toHaveBeenCalledTimes(3);
    expect(s.entity(after.src[1])?.kind).toBe('node');
  });

  it('a UID column of another kind is not read as one', () => {
    const s = cluster();
    const b = FlowBatch.from([flow(IP.node, IP.internet)]);
    b.ensureColumn(SRC_POD_UID, 'number').values[0] = 7;
    expect(ends(s, b)[0].src).toBe('node:node-a');
  });
});
