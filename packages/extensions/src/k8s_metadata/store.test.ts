import { parseIp } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import {
  type EndpointSliceRecord,
  MetadataStore,
  type NodeRecord,
  type PodRecord,
  type ServiceRecord,
} from './store.js';

const buf = new Uint8Array(16);
function at(ip: string): Uint8Array {
  if (parseIp(ip, buf, 0) === 0) throw new Error(ip);
  return buf;
}
const who = (s: MetadataStore, ip: string) => s.lookup(at(ip), 0);

const pod = (p: Partial<PodRecord> & { name: string }): PodRecord => ({
  uid: `${p.name}-uid`,
  namespace: 'ns',
  phase: 'Running',
  hostNetwork: false,
  ips: [],
  workloadKind: 'Pod',
  workloadName: p.name,
  labels: {},
  ...p,
});
const node = (n: Partial<NodeRecord> & { name: string }): NodeRecord => ({ ips: [], podCidrs: [], ...n });
const svc = (s: Partial<ServiceRecord> & { name: string }): ServiceRecord => ({
  namespace: 'ns',
  type: 'ClusterIP',
  clusterIps: [],
  loadBalancerIps: [],
  ...s,
});
const slice = (e: Partial<EndpointSliceRecord> & { name: string; service: string }): EndpointSliceRecord => ({
  namespace: 'ns',
  ports: [],
  endpoints: [],
  ...e,
});

describe('MetadataStore', () => {
  it('resolves both addresses of a dual-stack pod to the same entity, and forgets them on delete', () => {
    const s = new MetadataStore();
    s.upsertPod(
      pod({
        name: 'web',
        ips: ['10.0.0.1', 'fd00::1'],
        workloadKind: 'Deployment',
        workloadName: 'w',
        nodeName: 'n1',
      }),
    );
    const e = who(s, '10.0.0.1');
    expect(e).toMatchObject({
      kind: 'pod',
      namespace: 'ns',
      pod: 'web',
      workloadKind: 'Deployment',
      workloadName: 'w',
      nodeName: 'n1',
    });
    expect(who(s, 'fd00::1')).toBe(e);
    expect(s.entity(e?.id as number)).toBe(e);
    s.deletePod('web-uid');
    expect(who(s, '10.0.0.1')).toBeNull();
    expect(who(s, 'fd00::1')).toBeNull();
    expect(s.sizes()).toEqual({ pods: 0, nodes: 0, services: 0, endpointSlices: 0, addresses: 0 });
  });

  it('moves an address when a pod changes it, bumping the version', () => {
    const s = new MetadataStore();
    s.upsertPod(pod({ name: 'a', ips: ['10.0.0.1'] }));
    const e = who(s, '10.0.0.1');
    const v = e?.version as number;
    s.upsertPod(pod({ name: 'a', ips: ['10.0.0.2'] }));
    expect(who(s, '10.0.0.1')).toBeNull();
    expect(who(s, '10.0.0.2')).toBe(e);
    expect(e?.version).toBe(v + 1);
  });

  it('leaves a node address to the node, whatever hostNetwork pods say', () => {
    const s = new MetadataStore();
    s.upsertNode(node({ name: 'n1', ips: ['192.168.0.1'] }));
    s.upsertPod(pod({ name: 'proxy', ips: ['192.168.0.1'], hostNetwork: true, nodeName: 'n1' }));
    expect(who(s, '192.168.0.1')).toMatchObject({ kind: 'node', nodeName: 'n1' });
    s.deletePod('proxy-uid');
    expect(who(s, '192.168.0.1')).toMatchObject({ kind: 'node', nodeName: 'n1' });
  });

  it('finds a pod by its UID whatever its addresses: hostNetwork, finished, replaced, deleted', () => {
    const s = new MetadataStore();
    s.upsertNode(node({ name: 'n1', ips: ['192.168.0.1'] }));
    s.upsertPod(pod({ name: 'proxy', ips: ['192.168.0.1'], hostNetwork: true, nodeName: 'n1' }));
    s.upsertPod(pod({ name: 'job', ips: ['10.0.0.5'], phase: 'Succeeded', nodeName: 'n1' }));
    const proxy = s.podByUid('proxy-uid');
    expect(proxy).toMatchObject({ kind: 'pod', namespace: 'ns', pod: 'proxy', nodeName: 'n1' });
    // The address stays the node's; the UID names the pod.
    expect(who(s, '192.168.0.1')).toMatchObject({ kind: 'node' });
    expect(s.entity(proxy!.id)).toBe(proxy);
    expect(s.podByUid('job-uid')?.pod).toBe('job');
    expect(s.podByUid('nobody')).toBeUndefined();
    s.upsertPod(pod({ name: 'proxy', uid: 'proxy-uid-2', hostNetwork: true, nodeName: 'n1' }));
    expect(s.podByUid('proxy-uid')).toBeUndefined();
    expect(s.podByUid('proxy-uid-2')?.pod).toBe('proxy');
    s.deletePod('proxy-uid-2');
    expect(s.podByUid('proxy-uid-2')).toBeUndefined();
  });

  it('finds a static pod by the UID the kubelet gives it (its mirror pod’s config hash) as well', () => {
    const s = new MetadataStore();
    s.upsertNode(node({ name: 'n1', ips: ['192.168.0.1'] }));
    const etcd = pod({
      name: 'etcd-n1',
      uid: 'mirror-uid-1',
      hostNetwork: true,
      nodeName: 'n1',
      ips: ['192.168.0.1'],
      configHash: 'hash-1',
    });
    s.upsertPod(etcd);
    s.upsertPod(pod({ name: 'apiserver-n1', hostNetwork: true, nodeName: 'n1', configHash: 'hash-a' }));
    expect(s.podByUid('hash-1')?.pod).toBe('etcd-n1');
    expect(s.podByUid('mirror-uid-1')).toBe(s.podByUid('hash-1'));
    expect(s.podByUid('hash-a')?.pod).toBe('apiserver-n1');
    // A changed manifest: the kubelet replaces the mirror pod (same name, new uid and hash).
    s.upsertPod({ ...etcd, uid: 'mirror-uid-2', configHash: 'hash-2' });
    expect(s.podByUid('hash-1')).toBeUndefined();
    expect(s.podByUid('mirror-uid-1')).toBeUndefined();
    expect(s.podByUid('hash-2')?.pod).toBe('etcd-n1');
    // An update that changes the hash in place moves the index with it.
    s.upsertPod({ ...etcd, uid: 'mirror-uid-2', configHash: 'hash-3' });
    expect(s.podByUid('hash-2')).toBeUndefined();
    expect(s.podByUid('hash-3')?.pod).toBe('etcd-n1');
    // A mirror pod recreated under another name that takes the hash keeps it when the old one goes.
    s.upsertPod(
      pod({ name: 'etcd-n1-renamed', uid: 'mirror-uid-4', hostNetwork: true, configHash: 'hash-3' }),
    );
    expect(s.podByUid('hash-3')?.pod).toBe('etcd-n1-renamed');
    s.deletePod('mirror-uid-2');
    expect(s.podByUid('hash-3')?.pod).toBe('etcd-n1-renamed');
    s.deletePod('mirror-uid-4');
    expect(s.podByUid('hash-3')).toBeUndefined();
    // The address stays the node's throughout.
    expect(who(s, '192.168.0.1')).toMatchObject({ kind: 'node' });
  });

  it('gives a reused address to the running pod; deleting the finished one does not unmap it', () => {
    const s = new MetadataStore();
    s.upsertPod(pod({ name: 'job', ips: ['10.0.0.5'] }));
    s.upsertPod(pod({ name: 'job', ips: ['10.0.0.5'], phase: 'Succeeded' }));
    expect(who(s, '10.0.0.5')).toBeNull();
    s.upsertPod(pod({ name: 'web', ips: ['10.0.0.5'] }));
    s.deletePod('job-uid');
    expect(who(s, '10.0.0.5')?.pod).toBe('web');
  });

  it('between two running pods with one address, the newer wins and the older gets it back', () => {
    const s = new MetadataStore();
    s.upsertPod(pod({ name: 'old', ips: ['10.0.0.6'] }));
    s.upsertPod(pod({ name: 'new', ips: ['10.0.0.6'] }));
    expect(who(s, '10.0.0.6')?.pod).toBe('new');
    s.deletePod('new-uid');
    expect(who(s, '10.0.0.6')?.pod).toBe('old');
  });

  it('replaces a pod recreated under the same name with a new uid (seen by a relist as an update)', () => {
    const s = new MetadataStore();
    s.upsertPod(pod({ name: 'db-0', uid: 'u1', ips: ['10.0.0.7'] }));
    s.upsertPod(pod({ name: 'db-0', uid: 'u2', ips: ['10.0.0.8'] }));
    expect(who(s, '10.0.0.7')).toBeNull();
    expect(who(s, '10.0.0.8')?.pod).toBe('db-0');
    expect(s.sizes().pods).toBe(1);
    s.deletePod('u1'); // a late delete of the old one changes nothing
    expect(who(s, '10.0.0.8')?.pod).toBe('db-0');
    s.deletePodNamed('ns', 'db-0');
    expect(who(s, '10.0.0.8')).toBeNull();
    expect(s.sizes().pods).toBe(0);
  });

  it('places unknown addresses inside a node podCIDR on that node, until the node goes', () => {
    const s = new MetadataStore();
    s.upsertNode(
      node({
        name: 'n2',
        zone: 'z2',
        region: 'r',
        podCidrs: ['10.2.0.0/24', 'fd00:2::/64'],
        provider: 'gcp',
      }),
    );
    const e = who(s, '10.2.0.9');
    expect(e).toMatchObject({ kind: 'pod', nodeName: 'n2' });
    expect(e?.pod).toBeUndefined();
    expect(who(s, 'fd00:2::9')).toBe(e);
    expect(s.zoneOf(e as NonNullable<typeof e>)).toBe('z2');
    expect(s.regionOf(e as NonNullable<typeof e>)).toBe('r');
    expect(who(s, '10.3.0.9')).toBeNull();
    s.deleteNode('n2');
    expect(who(s, '10.2.0.9')).toBeNull();
  });

  it('counts providers per node', () => {
    const s = new MetadataStore();
    s.upsertNode(node({ name: 'a', provider: 'aws' }));
    s.upsertNode(node({ name: 'b', provider: 'aws' }));
    s.upsertNode(node({ name: 'c', provider: 'gcp' }));
    s.upsertNode(node({ name: 'd' }));
    expect(s.providers()).toEqual(
      new Map([
        ['aws', 2],
        ['gcp', 1],
      ]),
    );
  });

  it('gives ClusterIPs and load-balancer addresses to their service', () => {
    const s = new MetadataStore();
    s.upsertService(
      svc({ name: 'web', clusterIps: ['10.96.0.10', 'fd00:96::10'], loadBalancerIps: ['203.0.113.7'] }),
    );
    expect(who(s, '10.96.0.10')).toMatchObject({ kind: 'service', service: 'web', loadBalancer: false });
    expect(who(s, 'fd00:96::10')).toBe(who(s, '10.96.0.10'));
    expect(who(s, '203.0.113.7')).toMatchObject({ kind: 'service', service: 'web', loadBalancer: true });
    s.deleteService('ns', 'web');
    expect(who(s, '10.96.0.10')).toBeNull();
    expect(who(s, '203.0.113.7')).toBeNull();
  });

  it('finds the service of a backend by address and port, whichever arrives first', () => {
    const s = new MetadataStore();
    s.upsertPod(pod({ name: 'web-1', ips: ['10.0.0.11'] }));
    s.upsertEndpointSlice(
      slice({
        name: 'web-x',
        service: 'web',
        ports: [8080],
        endpoints: [{ ips: ['10.0.0.11'], podRef: 'web-1-uid' }],
      }),
    );
    const fallback = s.serviceOfBackend(at('10.0.0.11'), 0, 8080);
    expect(fallback).toMatchObject({ kind: 'service', namespace: 'ns', service: 'web' });
    expect(s.serviceOfBackend(at('10.0.0.11'), 0, 9090)).toBeNull();
    s.upsertService(svc({ name: 'web', clusterIps: ['10.96.0.11'] }));
    expect(s.serviceOfBackend(at('10.0.0.11'), 0, 8080)).toBe(who(s, '10.96.0.11'));
    expect(who(s, '10.0.0.11')?.pod).toBe('web-1'); // a pod's address stays the pod's
    s.deleteEndpointSlice('ns', 'web-x');
    expect(s.serviceOfBackend(at('10.0.0.11'), 0, 8080)).toBeNull();
  });

  it('marks the API server: the kubernetes service and its non-pod endpoints', () => {
    const s = new MetadataStore();
    s.upsertService(svc({ namespace: 'default', name: 'kubernetes', clusterIps: ['10.96.0.1'] }));
    s.upsertEndpointSlice(
      slice({
        namespace: 'default',
        name: 'kubernetes',
        service: 'kubernetes',
        ports: [6443],
        endpoints: [{ ips: ['172.20.0.5'] }],
      }),
    );
    expect(who(s, '10.96.0.1')).toMatchObject({ kind: 'service', controlPlane: true });
    expect(who(s, '172.20.0.5')).toMatchObject({
      kind: 'endpoint',
      service: 'kubernetes',
      controlPlane: true,
    });
    expect(s.isControlPlane(at('172.20.0.5'), 0)).toBe(true);
    s.deleteEndpointSlice('default', 'kubernetes');
    expect(s.isControlPlane(at('172.20.0.5'), 0)).toBe(false);
    expect(who(s, '172.20.0.5')).toBeNull();
  });

  it('bumps generation on every write and reuses entity ids', () => {
    const s = new MetadataStore();
    const g = s.generation;
    s.upsertPod(pod({ name: 'a', ips: ['10.0.0.1'] }));
    const id = who(s, '10.0.0.1')?.id;
    s.deletePod('a-uid');
    expect(s.generation).toBe(g + 2);
    s.upsertPod(pod({ name: 'b', ips: ['10.0.0.2'] }));
    expect(who(s, '10.0.0.2')?.id).toBe(id);
    expect(s.idLimit).toBe((id as number) + 1);
  });
});

describe('MetadataStore: pod deletions (metric exporters drop their series)', () => {
  it('reports each deleted pod by namespace and name; hasPod tells a recreated one apart', () => {
    const s = new MetadataStore();
    const deleted: string[] = [];
    const unsubscribe = s.onPodDeleted((ns, name) => deleted.push(`${ns}/${name}`));
    s.upsertPod(pod({ name: 'web-1', ips: ['10.0.0.1'] }));
    s.upsertPod(pod({ name: 'db-0', ips: ['10.0.0.2'] }));
    expect(s.hasPod('ns', 'web-1')).toBe(true);
    s.deletePod('web-1-uid');
    // A StatefulSet pod recreated under its name: the old one is reported, the name is still known.
    s.upsertPod(pod({ name: 'db-0', uid: 'db-0-uid2', ips: ['10.0.0.3'] }));
    s.replacePods([]);
    expect(deleted).toEqual(['ns/web-1', 'ns/db-0', 'ns/db-0']);
    expect(s.hasPod('ns', 'web-1')).toBe(false);
    expect(s.hasPod('ns', 'db-0')).toBe(false);
    s.deletePod('never-known');
    unsubscribe();
    s.upsertPod(pod({ name: 'x' }));
    s.deletePod('x-uid');
    expect(deleted).toHaveLength(3);
  });
});

describe('MetadataStore: who wins an address', () => {
  it('a node keeps its IP when a Service lists it as a load-balancer or external IP (k3s ServiceLB)', () => {
    const s = new MetadataStore();
    s.upsertNode(node({ name: 'n1', ips: ['192.168.1.10'] }));
    s.upsertService(
      svc({ name: 'web', clusterIps: ['10.43.0.9'], loadBalancerIps: ['192.168.1.10', '203.0.113.9'] }),
    );
    expect(who(s, '192.168.1.10')).toMatchObject({ kind: 'node', nodeName: 'n1' });
    expect(who(s, '203.0.113.9')).toMatchObject({ kind: 'service', service: 'web', loadBalancer: true });
    expect(who(s, '10.43.0.9')).toMatchObject({ kind: 'service', loadBalancer: false });
  });

  it('an update of the older pod does not take back an IP a newer pod was given', () => {
    const s = new MetadataStore();
    s.upsertPod(pod({ name: 'old', ips: ['10.0.0.5'] }));
    s.upsertPod(pod({ name: 'new', ips: ['10.0.0.5'] }));
    s.upsertPod(pod({ name: 'old', ips: ['10.0.0.5'], labels: { touched: 'yes' } }));
    expect(who(s, '10.0.0.5')?.pod).toBe('new');
    s.deletePod('new-uid');
    expect(who(s, '10.0.0.5')?.pod).toBe('old');
  });
});
