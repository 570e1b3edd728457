import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_MIRROR,
  endpointSliceRecord,
  nodeRecord,
  podRecord,
  providerOf,
  serviceRecord,
  workloadOf,
} from './normalize.js';

const owned = (kind: string, name: string, labels: Record<string, string> = {}, controller = true) => ({
  metadata: { name: 'p', labels, ownerReferences: [{ kind, name, controller }] },
});

describe('podRecord', () => {
  const watched = {
    metadata: { uid: 'u', name: 'web-1', namespace: 'shop', labels: { app: 'web', team: 'a' } },
    spec: { nodeName: 'n1' },
    status: { phase: 'Running', podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }] },
  };

  it('reads plain watch JSON: both addresses, only the requested labels', () => {
    expect(podRecord(watched, new Set(['app', 'missing']))).toEqual({
      uid: 'u',
      namespace: 'shop',
      name: 'web-1',
      nodeName: 'n1',
      phase: 'Running',
      hostNetwork: false,
      ips: ['10.0.0.1', 'fd00::1'],
      workloadKind: 'Pod',
      workloadName: 'web-1',
      labels: { app: 'web' },
    });
  });

  it('reads list objects with Date fields the same way', () => {
    const listed = {
      ...watched,
      metadata: { ...watched.metadata, creationTimestamp: new Date(0) },
      status: { ...watched.status, startTime: new Date(0) },
    };
    expect(podRecord(listed, new Set())).toEqual({ ...podRecord(watched, new Set()) });
  });

  it('falls back to status.podIP, knows hostNetwork and pending pods, rejects objects without identity', () => {
    const single = podRecord(
      {
        metadata: { uid: 'u', name: 'p', namespace: 'n' },
        spec: { hostNetwork: true },
        status: { podIP: '192.168.0.1' },
      },
      new Set(),
    );
    expect(single).toMatchObject({ ips: ['192.168.0.1'], hostNetwork: true, phase: 'Unknown' });
    expect(
      podRecord(
        { metadata: { uid: 'u', name: 'p', namespace: 'n' }, status: { phase: 'Pending' } },
        new Set(),
      ),
    ).toMatchObject({ ips: [], phase: 'Pending' });
    expect(podRecord({ metadata: { name: 'p', namespace: 'n' } }, new Set())).toBeUndefined();
    expect(podRecord(null, new Set())).toBeUndefined();
  });

  it('keeps a mirror pod’s config hash, the UID its static pod has on the node', () => {
    // kubeadm's etcd as the API shows it: config.hash and config.mirror carry the manifest's hash, which
    // the kubelet runs the static pod under; metadata.uid is the mirror pod's own.
    const list = JSON.parse(readFileSync(new URL('./testdata/static-pods.json', import.meta.url), 'utf8'));
    const etcd = list.items[0];
    expect(etcd.metadata.annotations[CONFIG_MIRROR]).toBe('5f1c0b7e2d9a4c3e8b6f0a1d2e3c4b5a');
    expect(podRecord(etcd, new Set())).toEqual({
      uid: '0b6f3c1e-8d2a-4f7b-9e5c-3a1d7f0e2b48',
      namespace: 'kube-system',
      name: 'etcd-ip-10-1-1-20.eu-west-1.compute.internal',
      nodeName: 'ip-10-1-1-20.eu-west-1.compute.internal',
      phase: 'Running',
      hostNetwork: true,
      ips: ['10.1.1.20'],
      workloadKind: 'Node',
      workloadName: 'ip-10-1-1-20.eu-west-1.compute.internal',
      labels: {},
      configHash: '5f1c0b7e2d9a4c3e8b6f0a1d2e3c4b5a',
    });
    // Only the mirror annotation counts: other annotations, or none, leave the record without a hash.
    const other = {
      ...watched,
      metadata: { ...watched.metadata, annotations: { 'kubernetes.io/config.hash': 'x' } },
    };
    expect(podRecord(other, new Set())?.configHash).toBeUndefined();
    expect(podRecord(watched, new Set())?.configHash).toBeUndefined();
    const empty = { ...watched, metadata: { ...watched.metadata, annotations: { [CONFIG_MIRROR]: '' } } };
    expect(podRecord(empty, new Set())?.configHash).toBeUndefined();
  });
});

describe('workloadOf', () => {
  it('walks a ReplicaSet to its Deployment by the pod-template-hash suffix', () => {
    expect(workloadOf(owned('ReplicaSet', 'web-7d9f8b6c5', { 'pod-template-hash': '7d9f8b6c5' }))).toEqual({
      kind: 'Deployment',
      name: 'web',
    });
    expect(workloadOf(owned('ReplicaSet', 'bare-rs', { 'pod-template-hash': '7d9f8b6c5' }))).toEqual({
      kind: 'ReplicaSet',
      name: 'bare-rs',
    });
    expect(workloadOf(owned('ReplicaSet', 'web-7d9f8b6c5'))).toEqual({
      kind: 'ReplicaSet',
      name: 'web-7d9f8b6c5',
    });
  });

  it("walks a Job to its CronJob by the controller's naming, within sane times", () => {
    expect(workloadOf(owned('Job', 'backup-29000000'))).toEqual({ kind: 'CronJob', name: 'backup' });
    expect(workloadOf(owned('Job', 'migrate-12345678'))).toEqual({ kind: 'Job', name: 'migrate-12345678' }); // 1993
    expect(workloadOf(owned('Job', 'migrate'))).toEqual({ kind: 'Job', name: 'migrate' });
  });

  it('takes other controllers as they are, the controller owner first, and a bare pod as Pod', () => {
    expect(workloadOf(owned('StatefulSet', 'db'))).toEqual({ kind: 'StatefulSet', name: 'db' });
    expect(workloadOf(owned('DaemonSet', 'agent'))).toEqual({ kind: 'DaemonSet', name: 'agent' });
    const two = {
      metadata: {
        name: 'p',
        ownerReferences: [
          { kind: 'ConfigMap', name: 'x' },
          { kind: 'StatefulSet', name: 'db', controller: true },
        ],
      },
    };
    expect(workloadOf(two)).toEqual({ kind: 'StatefulSet', name: 'db' });
    expect(workloadOf(owned('Node', 'n1', {}, false))).toEqual({ kind: 'Node', name: 'n1' }); // static pod
    expect(workloadOf({ metadata: { name: 'debug' } })).toEqual({ kind: 'Pod', name: 'debug' });
  });
});

describe('nodeRecord', () => {
  it('reads zone, region, provider, InternalIP/ExternalIP and podCIDRs', () => {
    expect(
      nodeRecord({
        metadata: {
          name: 'n1',
          labels: {
            'topology.kubernetes.io/zone': 'us-east-1a',
            'topology.kubernetes.io/region': 'us-east-1',
          },
        },
        spec: {
          providerID: 'aws:///us-east-1a/i-0abc',
          podCIDR: '10.1.0.0/24',
          podCIDRs: ['10.1.0.0/24', 'fd00:1::/64'],
        },
        status: {
          addresses: [
            { type: 'InternalIP', address: '192.168.0.1' },
            { type: 'ExternalIP', address: '54.0.0.1' },
            { type: 'Hostname', address: 'n1' },
          ],
        },
      }),
    ).toEqual({
      name: 'n1',
      zone: 'us-east-1a',
      region: 'us-east-1',
      provider: 'aws',
      ips: ['192.168.0.1', '54.0.0.1'],
      podCidrs: ['10.1.0.0/24', 'fd00:1::/64'],
    });
  });

  it('falls back to the failure-domain.beta labels and to spec.podCIDR', () => {
    expect(
      nodeRecord({
        metadata: {
          name: 'n2',
          labels: {
            'failure-domain.beta.kubernetes.io/zone': 'b',
            'failure-domain.beta.kubernetes.io/region': 'r',
          },
        },
        spec: { podCIDR: '10.2.0.0/24' },
      }),
    ).toEqual({
      name: 'n2',
      zone: 'b',
      region: 'r',
      provider: undefined,
      ips: [],
      podCidrs: ['10.2.0.0/24'],
    });
    expect(nodeRecord({ metadata: {} })).toBeUndefined();
  });

  it('names providers by providerID scheme', () => {
    expect(providerOf('aws:///us-east-1a/i-0abc')).toBe('aws');
    expect(providerOf('gce://project/us-central1-a/node')).toBe('gcp');
    expect(providerOf('azure:///subscriptions/x/resourceGroups/y')).toBe('azure');
    expect(providerOf('kind://docker/kind/kind-control-plane')).toBe('kind');
    expect(providerOf('i-0abc')).toBeUndefined();
    expect(providerOf(undefined)).toBeUndefined();
  });
});

describe('serviceRecord and endpointSliceRecord', () => {
  it('reads dual-stack ClusterIPs without None, load-balancer ingress and external IPs', () => {
    expect(
      serviceRecord({
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          type: 'LoadBalancer',
          clusterIP: '10.96.0.10',
          clusterIPs: ['10.96.0.10', 'fd00:96::10'],
          externalIPs: ['198.51.100.1'],
        },
        status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }, { hostname: 'lb.example' }] } },
      }),
    ).toEqual({
      namespace: 'shop',
      name: 'web',
      type: 'LoadBalancer',
      clusterIps: ['10.96.0.10', 'fd00:96::10'],
      loadBalancerIps: ['203.0.113.7', '198.51.100.1'],
    });
    expect(
      serviceRecord({ metadata: { name: 'h', namespace: 'n' }, spec: { clusterIP: 'None' } }),
    ).toMatchObject({ type: 'ClusterIP', clusterIps: [] });
  });

  it('reads slices by their service label, with ports and pod references', () => {
    expect(
      endpointSliceRecord({
        metadata: { name: 'web-x', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
        ports: [{ port: 8080 }, { name: 'no-port' }],
        endpoints: [
          { addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'web-1', uid: 'u1' } },
          { addresses: ['172.20.0.5'] },
        ],
      }),
    ).toEqual({
      namespace: 'shop',
      name: 'web-x',
      service: 'web',
      ports: [8080],
      endpoints: [
        { ips: ['10.0.0.1'], podRef: 'u1' },
        { ips: ['172.20.0.5'], podRef: undefined },
      ],
    });
    expect(endpointSliceRecord({ metadata: { name: 'orphan', namespace: 'n' } })).toBeUndefined();
  });
});
