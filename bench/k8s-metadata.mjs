// k8s_metadata extension: memory and time to sync a cluster-scope watch of PODS pods, through the real
// @kubernetes/client-node informers against the API stand-in (test/harness, loaded with Node's type
// stripping), on the built packages.
//   make build && .tools/bin/node --expose-gc bench/k8s-metadata.mjs
// PODS=10000,100000 NODES=100 by default; one Service with an EndpointSlice per ten pods. Heap is measured
// after a forced GC, before the informers start and once every informer has synced; the stand-in's own
// objects exist before the first reading, so the difference is the extension's (store + informer caches).
import { performance } from 'node:perf_hooks';
import { k8sMetadataConfig } from '@netmon/extensions';
import { K8sMetadataExtension } from '@netmon/extensions/k8s_metadata';
import { K8sApiStandIn } from '../test/harness/k8s-api.ts';
import { endpointSlice, node, pod, service } from '../test/harness/k8s-fixtures.ts';
import { gc, report, settings } from './common.mjs';

const PODS = (process.env.PODS ?? '10000,100000').split(',').map(Number);
const NODES = Number(process.env.NODES ?? 100);
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
const podIp = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

for (const pods of PODS) {
  const api = await K8sApiStandIn.start();
  for (let n = 0; n < NODES; n++) {
    api.add(
      node({
        name: `node-${n}`,
        zone: ZONES[n % 3],
        region: 'us-east-1',
        internalIPs: [`10.250.${n >> 8}.${n & 255}`],
      }),
    );
  }
  const objects = [];
  for (let i = 0; i < pods; i++) {
    const app = `app-${Math.floor(i / 10)}`;
    objects.push(
      pod({
        namespace: `ns-${i % 50}`,
        name: `${app}-6d4cf56db6-${i.toString(36).padStart(5, 'x')}`,
        uid: `uid-${i}`,
        node: `node-${i % NODES}`,
        ips: [podIp(i + 1)],
        labels: { app, 'pod-template-hash': '6d4cf56db6' },
        owner: { kind: 'ReplicaSet', name: `${app}-6d4cf56db6` },
      }),
    );
  }
  api.add(objects);
  const services = [];
  for (let s = 0; s < pods / 10; s++) {
    services.push(
      service({
        namespace: `ns-${s % 50}`,
        name: `app-${s}`,
        clusterIPs: [`172.20.${(s >> 8) & 255}.${s & 255}`],
      }),
    );
    services.push(
      endpointSlice({
        namespace: `ns-${s % 50}`,
        name: `app-${s}-x`,
        service: `app-${s}`,
        ports: [8080],
        endpoints: Array.from({ length: 10 }, (_, k) => ({
          addresses: [podIp(s * 10 + k + 1)],
          pod: `uid-${s * 10 + k}`,
        })),
      }),
    );
  }
  api.add(services);
  objects.length = 0;
  services.length = 0;
  gc();
  const before = process.memoryUsage();
  const ext = new K8sMetadataExtension(
    settings('extension', 'k8s_metadata'),
    k8sMetadataConfig.parse({ node_name: 'node-0', wait_for_sync: '120s' }),
    {
      kubeConfig: api.kubeConfig(),
    },
  );
  const t = performance.now();
  await ext.start();
  const synced = performance.now() - t;
  if (!ext.synced()) throw new Error('not synced');
  gc();
  const after = process.memoryUsage();
  const heap = after.heapUsed - before.heapUsed;
  const sizes = ext.store.sizes();
  report(
    `k8s_metadata, ${pods.toLocaleString('en-US')} pods (cluster scope)`,
    heap / 2 ** 20,
    'MiB heap',
    `${Math.round(heap / pods)} B/pod; ${sizes.addresses.toLocaleString('en-US')} addresses; synced in ${(synced / 1000).toFixed(1)} s`,
  );
  await ext.shutdown();
  await api.close();
}
