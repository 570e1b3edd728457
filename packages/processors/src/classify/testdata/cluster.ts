// A small AWS cluster for processor tests: the real MetadataStore and batch resolution, filled with
// records directly (the informers that feed it in production are tested against an API stand-in in
// test/k8s). Two zones and a second region, a Service with a backend, the API server, a load balancer.
import { FlowFlags, type FlowInit } from '@netmon/core';
import type { K8sMetadata } from '@netmon/extensions';
import { resolveBatch } from '@netmon/extensions';
import { MetadataStore, type PodRecord } from '@netmon/extensions';

export const IP = {
  nodeA: '10.0.1.10',
  nodeA2: '10.0.1.11',
  nodeB: '10.0.2.10',
  nodeEu: '10.8.3.10',
  web: '10.1.1.5', // shop/web (Deployment) on node-a, us-east-1a
  cache: '10.1.1.6', // shop/cache (StatefulSet) on node-a
  worker: '10.1.4.9', // jobs/worker (Deployment) on node-a2, us-east-1a
  db: '10.1.2.7', // shop/db-0 (StatefulSet) on node-b, us-east-1b
  dbV6: 'fd00:1:2::7',
  api: '10.9.3.4', // eu/api on node-eu, eu-west-1
  unwatched: '10.1.2.99', // in node-b's pod CIDR, no pod known (scope node)
  dbService: '172.20.0.10',
  kubernetes: '172.20.0.1',
  apiServer: '10.0.0.100',
  lb: '203.0.113.50',
  internet: '8.8.8.8',
  client: '198.51.100.7',
  imds: '169.254.169.254',
  corp: '192.168.50.5',
} as const;

const pod = (p: Partial<PodRecord> & Pick<PodRecord, 'uid' | 'name' | 'namespace'>): PodRecord => ({
  phase: 'Running',
  hostNetwork: false,
  ips: [],
  workloadKind: 'Pod',
  workloadName: p.name,
  labels: {},
  ...p,
});

export function awsStore(): MetadataStore {
  return clusterStore('aws');
}

/**
 * The same cluster with its nodes' spec.providerID naming `provider` (undefined: none, as on kind or bare
 * metal). Zone and region names stay AWS's: only the provider matters where this is used.
 */
export function clusterStore(provider: string | undefined): MetadataStore {
  const s = new MetadataStore();
  const node = (name: string, zone: string, region: string, ip: string, cidr: string) =>
    s.upsertNode({ name, zone, region, provider, ips: [ip], podCidrs: [cidr] });
  node('node-a', 'us-east-1a', 'us-east-1', IP.nodeA, '10.1.1.0/24');
  node('node-a2', 'us-east-1a', 'us-east-1', IP.nodeA2, '10.1.4.0/24');
  node('node-b', 'us-east-1b', 'us-east-1', IP.nodeB, '10.1.2.0/24');
  node('node-eu', 'eu-west-1a', 'eu-west-1', IP.nodeEu, '10.9.3.0/24');
  s.upsertPod(
    pod({
      uid: 'u-web',
      name: 'web-7d9f8-abcde',
      namespace: 'shop',
      nodeName: 'node-a',
      ips: [IP.web],
      workloadKind: 'Deployment',
      workloadName: 'web',
      labels: { app: 'web', team: 'store' },
    }),
  );
  s.upsertPod(
    pod({
      uid: 'u-cache',
      name: 'cache-0',
      namespace: 'shop',
      nodeName: 'node-a',
      ips: [IP.cache],
      workloadKind: 'StatefulSet',
      workloadName: 'cache',
    }),
  );
  s.upsertPod(
    pod({
      uid: 'u-worker',
      name: 'worker-5c6d-xyz12',
      namespace: 'jobs',
      nodeName: 'node-a2',
      ips: [IP.worker],
      workloadKind: 'Deployment',
      workloadName: 'worker',
    }),
  );
  s.upsertPod(
    pod({
      uid: 'u-db',
      name: 'db-0',
      namespace: 'shop',
      nodeName: 'node-b',
      ips: [IP.db, IP.dbV6],
      workloadKind: 'StatefulSet',
      workloadName: 'db',
      labels: { app: 'db' },
    }),
  );
  s.upsertPod(pod({ uid: 'u-api', name: 'api-1', namespace: 'eu', nodeName: 'node-eu', ips: [IP.api] }));
  s.upsertService({
    namespace: 'shop',
    name: 'db',
    type: 'ClusterIP',
    clusterIps: [IP.dbService],
    loadBalancerIps: [],
  });
  s.upsertEndpointSlice({
    namespace: 'shop',
    name: 'db-x1',
    service: 'db',
    ports: [5432],
    endpoints: [{ ips: [IP.db], podRef: 'u-db' }],
  });
  s.upsertService({
    namespace: 'default',
    name: 'kubernetes',
    type: 'ClusterIP',
    clusterIps: [IP.kubernetes],
    loadBalancerIps: [],
  });
  s.upsertEndpointSlice({
    namespace: 'default',
    name: 'kubernetes',
    service: 'kubernetes',
    ports: [443],
    endpoints: [{ ips: [IP.apiServer] }],
  });
  s.upsertService({
    namespace: 'shop',
    name: 'front',
    type: 'LoadBalancer',
    clusterIps: ['172.20.0.20'],
    loadBalancerIps: [IP.lb],
  });
  return s;
}

/** The extension's surface over a store, as the processors see it. */
export function staticMetadata(store: MetadataStore, nodeName = 'node-a'): K8sMetadata {
  return {
    store,
    nodeName,
    standalone: false,
    offline: false,
    requestPodLabels: () => undefined,
    synced: () => true,
    provider: () => {
      let best: string | undefined;
      let count = 0;
      for (const [p, c] of store.providers()) if (c > count) [best, count] = [p, c];
      return best;
    },
    resolve: (batch) => resolveBatch(store, batch),
  };
}

const T0 = Date.parse('2026-11-21T10:00:00Z');

/** A 5 s flow from src to dst:443 whose initiator (src) is known, as conntrack reports it. */
export function flow(src: string, dst: string, extra: Partial<FlowInit> = {}): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 5000,
    protocol: 6,
    srcIp: src,
    srcPort: 40000,
    dstIp: dst,
    dstPort: 443,
    txBytes: 1000,
    rxBytes: 2000,
    flags: FlowFlags.InitiatorKnown,
    ...extra,
  };
}
