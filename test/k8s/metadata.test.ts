// The k8s_metadata extension against the Kubernetes API stand-in, through the real @kubernetes/client-node:
// what each address resolves to, how scope, outages, 410 relists and sync waits behave, and /status facts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type ComponentState, parseIp, StatusBoard } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { type Entity, k8sMetadataConfig } from '@netmon/extensions';
import { K8sMetadataExtension, type K8sMetadataOptions } from '@netmon/extensions/k8s_metadata';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { K8sApiStandIn, waitFor } from '../harness/k8s-api.js';
import { endpointSlice, node, pod, service } from '../harness/k8s-fixtures.js';

// --- the cluster ---------------------------------------------------------------------------------------

const NODES = [
  node({
    name: 'node-1',
    zone: 'us-east-1a',
    region: 'us-east-1',
    providerID: 'aws:///us-east-1a/i-0aaa1111',
    internalIPs: ['192.168.1.1', 'fd00:1::1'],
    externalIPs: ['54.0.0.1'],
    podCIDRs: ['10.1.1.0/24', 'fd00:10:1:1::/64'],
  }),
  node({
    name: 'node-2',
    zone: 'us-east-1b',
    region: 'us-east-1',
    legacyLabels: true,
    providerID: 'aws:///us-east-1b/i-0bbb2222',
    internalIPs: ['192.168.1.2'],
    podCIDRs: ['10.1.2.0/24'],
  }),
];
const WEB = pod({
  namespace: 'shop',
  name: 'web-7d9f8b6c5-x2x4z',
  node: 'node-1',
  ips: ['10.1.1.10', 'fd00:10:1:1::10'],
  labels: { app: 'web', team: 'a', 'pod-template-hash': '7d9f8b6c5' },
  owner: { kind: 'ReplicaSet', name: 'web-7d9f8b6c5' },
});
const DB = pod({
  namespace: 'shop',
  name: 'db-0',
  node: 'node-2',
  ips: ['10.1.2.20'],
  owner: { kind: 'StatefulSet', name: 'db' },
});
const AGENT = pod({
  namespace: 'kube-system',
  name: 'agent-8kq2m',
  node: 'node-1',
  ips: ['10.1.1.30'],
  owner: { kind: 'DaemonSet', name: 'agent' },
});
const BACKUP = pod({
  namespace: 'shop',
  name: 'backup-29000000-7xk2p',
  node: 'node-2',
  ips: ['10.1.2.40'],
  owner: { kind: 'Job', name: 'backup-29000000' },
});
const BARE = pod({ namespace: 'default', name: 'debug', node: 'node-1', ips: ['10.1.1.50'] });
const PROXY = pod({
  namespace: 'kube-system',
  name: 'kube-proxy-node-1',
  node: 'node-1',
  ips: ['192.168.1.1'],
  hostNetwork: true,
  owner: { kind: 'DaemonSet', name: 'kube-proxy' },
});
const PODS = [WEB, DB, AGENT, BACKUP, BARE, PROXY];
const SERVICES = [
  service({ namespace: 'shop', name: 'web', clusterIPs: ['10.96.0.10', 'fd00:96::10'], ports: [80] }),
  service({ name: 'kubernetes', clusterIPs: ['10.96.0.1'], ports: [443] }),
];
const SLICES = [
  endpointSlice({
    namespace: 'shop',
    name: 'web-abcde',
    service: 'web',
    ports: [8080],
    endpoints: [{ addresses: ['10.1.1.10'], pod: WEB.metadata.name }],
  }),
  endpointSlice({
    name: 'kubernetes',
    service: 'kubernetes',
    ports: [6443],
    endpoints: [{ addresses: ['172.20.0.5'] }],
  }),
];

// --- helpers -------------------------------------------------------------------------------------------

const scratch = new Uint8Array(16);
function at(ip: string): Uint8Array {
  if (parseIp(ip, scratch, 0) === 0) throw new Error(`not an address: ${ip}`);
  return scratch;
}
const lookup = (ext: K8sMetadataExtension, ip: string): Entity | null => ext.store.lookup(at(ip), 0);
/** The fields a flow is labelled with, for toMatchObject. */
function owner(ext: K8sMetadataExtension, ip: string) {
  const e = lookup(ext, ip);
  if (!e) return null;
  return {
    kind: e.kind,
    namespace: e.namespace,
    pod: e.pod,
    workloadKind: e.workloadKind,
    workloadName: e.workloadName,
    nodeName: e.nodeName,
    service: e.service,
    controlPlane: e.controlPlane,
  };
}

interface Harness {
  ext: K8sMetadataExtension;
  state: ComponentState;
  logs: { level: number; msg: string; [k: string]: unknown }[];
  facts(): Record<string, unknown> & {
    state: string;
    informers: Record<string, { synced: boolean; restarts: number; last_error: string | null }>;
  };
  start(): Promise<void>;
}

const FAST: K8sMetadataOptions = { backoff: { initialMs: 20, maxMs: 100 }, reconnectScale: 0.01 };
const made: K8sMetadataExtension[] = [];

/** The extension with the framework's part of the lifecycle (starting → ok) and a log that tests can read. */
function make(config: Record<string, unknown>, options?: K8sMetadataOptions): Harness {
  const board = new StatusBoard();
  const settings = testSettings('extension', 'k8s_metadata', { board });
  const logs: Harness['logs'] = [];
  settings.logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const state = board.all()[0];
  const parsed = k8sMetadataConfig.parse(config);
  const ext = options
    ? new K8sMetadataExtension(settings, parsed, options)
    : new K8sMetadataExtension(settings, parsed);
  made.push(ext);
  return {
    ext,
    state,
    logs,
    facts: () => state.details?.() as ReturnType<Harness['facts']>,
    async start() {
      board.set(state, 'starting');
      await ext.start();
      if (state.status === 'starting') board.set(state, 'ok');
    },
  };
}

let api: K8sApiStandIn;
beforeEach(async () => {
  api = await K8sApiStandIn.start();
});
afterEach(async () => {
  await Promise.all(made.splice(0).map((e) => e.shutdown()));
  await api.close();
});

function loadCluster(): void {
  api.add(NODES);
  api.add(PODS);
  api.add(SERVICES);
  api.add(SLICES);
}

// --- scenarios -----------------------------------------------------------------------------------------

describe('k8s_metadata against the API stand-in', () => {
  it('resolves pods to their namespace, workload, node, zone and region (kubeconfig file, cluster scope)', async () => {
    loadCluster();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-k8s-'));
    try {
      const kubeconfig = await api.writeKubeconfig(path.join(dir, 'kubeconfig'));
      const h = make({ kubeconfig, node_name: 'node-1' });
      h.ext.requestPodLabels(['app']);
      await h.start();
      expect(h.ext.synced()).toBe(true);
      expect(h.state.status).toBe('ok');
      expect(h.facts()).toMatchObject({
        mode: 'cluster',
        state: 'synced',
        node_name: 'node-1',
        sizes: { pods: 6, nodes: 2, services: 2, endpointSlices: 2 },
      });
      expect(h.facts().informers.pods).toEqual({ synced: true, restarts: 0, last_error: null });

      const { ext } = h;
      expect(owner(ext, '10.1.1.10')).toMatchObject({
        kind: 'pod',
        namespace: 'shop',
        pod: WEB.metadata.name,
        workloadKind: 'Deployment',
        workloadName: 'web',
        nodeName: 'node-1',
      });
      expect(owner(ext, 'fd00:10:1:1::10')).toMatchObject({ kind: 'pod', pod: WEB.metadata.name }); // dual-stack
      expect(lookup(ext, '10.1.1.10')).toBe(lookup(ext, 'fd00:10:1:1::10'));
      expect(lookup(ext, '10.1.1.10')?.labels).toEqual({ app: 'web' }); // only the requested keys
      expect(owner(ext, '10.1.2.20')).toMatchObject({
        pod: 'db-0',
        workloadKind: 'StatefulSet',
        workloadName: 'db',
        nodeName: 'node-2',
      });
      expect(owner(ext, '10.1.1.30')).toMatchObject({
        namespace: 'kube-system',
        workloadKind: 'DaemonSet',
        workloadName: 'agent',
      });
      expect(owner(ext, '10.1.2.40')).toMatchObject({
        pod: BACKUP.metadata.name,
        workloadKind: 'CronJob',
        workloadName: 'backup',
      });
      expect(owner(ext, '10.1.1.50')).toMatchObject({
        namespace: 'default',
        pod: 'debug',
        workloadKind: 'Pod',
        workloadName: 'debug',
      });

      const web = lookup(ext, '10.1.1.10') as Entity;
      const db = lookup(ext, '10.1.2.20') as Entity;
      expect([ext.store.zoneOf(web), ext.store.regionOf(web)]).toEqual(['us-east-1a', 'us-east-1']);
      expect([ext.store.zoneOf(db), ext.store.regionOf(db)]).toEqual(['us-east-1b', 'us-east-1']); // legacy labels
      expect(owner(ext, '54.0.0.1')).toMatchObject({ kind: 'node', nodeName: 'node-1' });
      expect(owner(ext, 'fd00:1::1')).toMatchObject({ kind: 'node', nodeName: 'node-1' });
      expect(ext.provider()).toBe('aws');
      expect(lookup(ext, '8.8.8.8')).toBeNull();

      // Every request carried no field selector: cluster scope lists every pod.
      expect(api.requests.filter((r) => r.path === '/api/v1/pods').every((r) => !r.query.fieldSelector)).toBe(
        true,
      );
      // The informers' caches hold slim objects only (memory: see informer.ts).
      for (const resource of ['pods', 'nodes', 'services', 'endpointslices']) {
        const cached = cacheOf(ext, resource);
        expect(cached.length).toBeGreaterThan(0);
        for (const obj of cached) {
          expect(
            Object.entries(obj)
              .filter(([, v]) => v !== undefined)
              .map(([k]) => k),
          ).toEqual(['metadata']);
          expect(
            Object.keys(obj.metadata).every((k) =>
              ['name', 'namespace', 'uid', 'resourceVersion'].includes(k),
            ),
          ).toBe(true);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('follows watch events: adds, updates and deletes, slimming what the watch delivers', async () => {
    loadCluster();
    const h = make({ node_name: 'node-1' }, { ...FAST, kubeConfig: api.kubeConfig(), pageSize: 2 });
    await h.start();
    // pageSize 2: lists came in pages.
    expect(api.requests.some((r) => r.query.continue)).toBe(true);
    const pods = '/api/v1/pods';
    await waitFor('the pod watch', () => api.openWatches(pods) === 1);
    api.add(
      pod({
        namespace: 'shop',
        name: 'web-7d9f8b6c5-new',
        node: 'node-2',
        ips: ['10.1.2.99'],
        labels: { 'pod-template-hash': '7d9f8b6c5' },
        owner: { kind: 'ReplicaSet', name: 'web-7d9f8b6c5' },
      }),
    );
    await waitFor('the new pod', () => lookup(h.ext, '10.1.2.99')?.pod === 'web-7d9f8b6c5-new');
    expect(owner(h.ext, '10.1.2.99')).toMatchObject({
      workloadKind: 'Deployment',
      workloadName: 'web',
      nodeName: 'node-2',
    });
    api.modify(pod({ namespace: 'default', name: 'debug', node: 'node-1', ips: ['10.1.1.51'] }));
    await waitFor('the moved address', () => lookup(h.ext, '10.1.1.51')?.pod === 'debug');
    expect(lookup(h.ext, '10.1.1.50')?.pod).toBeUndefined(); // back to node-1's pod range
    api.delete(DB);
    await waitFor('the deleted pod to go', () => lookup(h.ext, '10.1.2.20')?.pod === undefined);
    expect(
      cacheOf(h.ext, 'pods').every((o) => Object.keys(o.metadata).length <= 4 && o.spec === undefined),
    ).toBe(true);
  });

  it('names the service of a ClusterIP and of a backend, and marks the API server as the control plane', async () => {
    loadCluster();
    const h = make({}, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    const { ext } = h;
    expect(owner(ext, '10.96.0.10')).toMatchObject({
      kind: 'service',
      namespace: 'shop',
      service: 'web',
      controlPlane: false,
    });
    expect(owner(ext, 'fd00:96::10')).toMatchObject({ kind: 'service', service: 'web' });
    expect(ext.store.serviceOfBackend(at('10.1.1.10'), 0, 8080)).toMatchObject({
      kind: 'service',
      namespace: 'shop',
      service: 'web',
    });
    expect(ext.store.serviceOfBackend(at('10.1.1.10'), 0, 9999)).toBeNull();
    expect(owner(ext, '10.1.1.10')).toMatchObject({ kind: 'pod' }); // a backend pod stays a pod
    expect(owner(ext, '10.96.0.1')).toMatchObject({
      kind: 'service',
      namespace: 'default',
      service: 'kubernetes',
      controlPlane: true,
    });
    expect(owner(ext, '172.20.0.5')).toMatchObject({
      kind: 'endpoint',
      service: 'kubernetes',
      controlPlane: true,
    });
    expect(ext.store.isControlPlane(at('172.20.0.5'), 0)).toBe(true);
  });

  it("gives a node's InternalIP to the node, never to a hostNetwork pod on it", async () => {
    loadCluster();
    const h = make({}, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    expect(owner(h.ext, '192.168.1.1')).toMatchObject({ kind: 'node', nodeName: 'node-1', pod: undefined });
    api.delete(PROXY); // deleting the hostNetwork pod leaves the node's address alone
    await waitFor('the delete', () => h.facts().sizes && (h.facts().sizes as { pods: number }).pods === 5);
    expect(owner(h.ext, '192.168.1.1')).toMatchObject({ kind: 'node', nodeName: 'node-1' });
  });

  it('gives a reused IP to the running pod; deleting the completed one later does not unmap it', async () => {
    api.add(NODES);
    const old = pod({ namespace: 'batch', name: 'report-1', node: 'node-1', ips: ['10.1.1.60'] });
    api.add(old);
    const h = make({}, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    expect(lookup(h.ext, '10.1.1.60')?.pod).toBe('report-1');
    api.modify({ ...old, status: { phase: 'Succeeded', podIP: '10.1.1.60', podIPs: [{ ip: '10.1.1.60' }] } });
    await waitFor('the completed pod to let go', () => lookup(h.ext, '10.1.1.60')?.pod === undefined);
    api.add(pod({ namespace: 'shop', name: 'cart-1', node: 'node-1', ips: ['10.1.1.60'] }));
    await waitFor('the new owner', () => lookup(h.ext, '10.1.1.60')?.pod === 'cart-1');
    api.delete(old);
    await waitFor('the delete', () => (h.facts().sizes as { pods: number }).pods === 1);
    expect(owner(h.ext, '10.1.1.60')).toMatchObject({ kind: 'pod', namespace: 'shop', pod: 'cart-1' });
  });

  it("scope node lists and watches only this node's pods and places the others by podCIDR", async () => {
    loadCluster();
    const h = make({ scope: 'node', node_name: 'node-1' }, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    const podRequests = api.requests.filter((r) => r.path === '/api/v1/pods');
    expect(podRequests.map((r) => r.watch)).toEqual([false, true]); // a list, then a watch
    for (const r of podRequests) expect(r.query.fieldSelector).toBe('spec.nodeName=node-1');
    expect(podRequests[1].query).toMatchObject({ watch: 'true', allowWatchBookmarks: 'true' });
    expect(h.facts()).toMatchObject({
      mode: 'node',
      state: 'synced',
      sizes: { pods: 4, nodes: 2 },
      warnings: [],
    });
    expect(owner(h.ext, '10.1.1.10')).toMatchObject({ pod: WEB.metadata.name });
    // db-0 runs on node-2: not watched, but its address lies in node-2's podCIDR.
    const db = lookup(h.ext, '10.1.2.20') as Entity;
    expect(db).toMatchObject({ kind: 'pod', nodeName: 'node-2' });
    expect(db.pod).toBeUndefined();
    expect(h.ext.store.zoneOf(db)).toBe('us-east-1b');
    // A pod scheduled to node-1 later enters the watch.
    api.add(pod({ name: 'late', node: 'node-1', ips: ['10.1.1.77'] }));
    api.add(pod({ name: 'elsewhere', node: 'node-2', ips: ['10.1.2.77'] }));
    await waitFor('the late pod', () => lookup(h.ext, '10.1.1.77')?.pod === 'late');
    expect(lookup(h.ext, '10.1.2.77')?.pod).toBeUndefined();
  });

  it('scope node on a CNI that sets no pod CIDRs warns once, in the log and in /status, to use scope cluster', async () => {
    // EKS VPC CNI, Azure CNI, Cilium cluster-pool: nodes without spec.podCIDRs.
    const bare = NODES.map((n) => ({
      ...n,
      spec: { providerID: (n.spec as { providerID: string }).providerID },
    }));
    api.add(bare);
    api.add(PODS);
    api.add(SERVICES);
    api.add(SLICES);
    const h = make({ scope: 'node', node_name: 'node-1' }, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    // db-0 runs on node-2, which this agent does not watch: with no pod CIDR, its address is nobody's.
    expect(lookup(h.ext, '10.1.2.20')).toBeNull();
    expect(owner(h.ext, '10.1.1.10')).toMatchObject({ pod: WEB.metadata.name }); // this node's pods are fine
    const warning =
      /^scope node: no node has spec\.podCIDRs .*both nodes report each connection between their pods\. Use scope: cluster$/;
    expect(h.facts()).toMatchObject({ state: 'synced', warnings: [expect.stringMatching(warning)] });
    expect(h.state.status).toBe('ok'); // a configuration problem, not a failure
    const logged = h.logs.filter((l) => l.level === 40 && warning.test(l.msg));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ nodes: 2 });

    // Once a node has a pod CIDR, remote pods are placed again and /status says nothing more.
    api.modify(NODES[1]);
    await waitFor('node-2 pod CIDR', () => lookup(h.ext, '10.1.2.20')?.nodeName === 'node-2');
    expect(h.facts().warnings).toEqual([]);
    expect(h.logs.filter((l) => warning.test(l.msg))).toHaveLength(1);

    // Cluster scope needs no pod CIDRs: no warning.
    const all = make({ node_name: 'node-1' }, { ...FAST, kubeConfig: api.kubeConfig() });
    api.modify(bare[1]);
    await all.start();
    expect(all.facts()).toMatchObject({ mode: 'cluster', state: 'synced', warnings: [] });
    expect(owner(all.ext, '10.1.2.20')).toMatchObject({ pod: 'db-0', nodeName: 'node-2' });
  });

  it('rides out an API outage: degraded while down, changes made meanwhile arrive, ok again after', async () => {
    loadCluster();
    const h = make({}, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    await waitFor('four watches', () => api.openWatches() === 4);

    api.setDown(true);
    api.dropConnections();
    await waitFor('degraded', () => h.facts().state === 'degraded');
    expect(h.state.status).toBe('recoverable_error');
    expect(h.state.lastError).toMatch(/Kubernetes API failing: .*HTTP 503/);
    api.add(pod({ namespace: 'shop', name: 'while-down', node: 'node-2', ips: ['10.1.2.55'] }));
    await waitFor('a few failed restarts', () => h.facts().informers.pods.restarts >= 2);
    expect(lookup(h.ext, '10.1.2.55')?.pod).toBeUndefined();

    api.setDown(false);
    await waitFor('the pod added during the outage', () => lookup(h.ext, '10.1.2.55')?.pod === 'while-down');
    await waitFor('synced again', () => h.facts().state === 'synced' && h.state.status === 'ok');
    expect(h.facts().informers.pods.last_error).toMatch(/HTTP 503/); // kept for the record
    // Resumed from the last resourceVersion: no relist was needed.
    expect(
      api.requests.filter((r) => r.path === '/api/v1/pods' && !r.watch && r.status === 200),
    ).toHaveLength(1);
  });

  it('relists after 410 Gone and drops what vanished meanwhile; a recreated pod replaces its old self', async () => {
    loadCluster();
    const h = make({}, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    await waitFor('four watches', () => api.openWatches() === 4);
    expect(owner(h.ext, '10.1.1.30')).toMatchObject({ pod: 'agent-8kq2m' });
    expect(owner(h.ext, '10.1.2.20')).toMatchObject({ pod: 'db-0' });

    // Missed while disconnected: a pod deleted, a StatefulSet pod recreated (new uid, new address).
    api.setDown(true);
    api.dropConnections();
    api.delete([AGENT, DB]);
    api.add(
      pod({
        namespace: 'shop',
        name: 'db-0',
        node: 'node-2',
        ips: ['10.1.2.21'],
        owner: { kind: 'StatefulSet', name: 'db' },
      }),
    );
    api.expire();
    api.setDown(false);

    await waitFor('the relist', () => lookup(h.ext, '10.1.2.21')?.pod === 'db-0');
    expect(api.requests.some((r) => r.path === '/api/v1/pods' && r.watch && r.status === 410)).toBe(true);
    expect(lookup(h.ext, '10.1.1.30')?.pod).toBeUndefined();
    expect(lookup(h.ext, '10.1.2.20')?.pod).toBeUndefined();
    await waitFor('synced', () => h.facts().state === 'synced');
    expect(h.facts().sizes).toMatchObject({ pods: 5 });

    // An expiry on an open watch (ERROR 410 event): the client relists at once.
    await waitFor('four watches', () => api.openWatches() === 4);
    const lists = api.requests.filter((r) => !r.watch).length;
    api.expire();
    await waitFor('relists', () => api.requests.filter((r) => !r.watch).length >= lists + 4);
    await waitFor('four watches again', () => api.openWatches() === 4);
    expect(h.facts()).toMatchObject({
      state: 'synced',
      sizes: { pods: 5, nodes: 2, services: 2, endpointSlices: 2 },
    });
  });

  it('returns from start after wait_for_sync when the API does not answer, and says it is not synced', async () => {
    loadCluster();
    api.stall(true);
    const h = make({ wait_for_sync: '300ms' }, { ...FAST, kubeConfig: api.kubeConfig() });
    const t0 = Date.now();
    await h.start();
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(3000);
    expect(h.ext.synced()).toBe(false);
    expect(h.state.status).toBe('recoverable_error');
    expect(h.state.lastError).toBe('not synced after 300ms; flows are labelled as metadata arrives');
    expect(h.facts()).toMatchObject({ state: 'syncing', informers: { pods: { synced: false } } });
    expect(h.logs.some((l) => l.level === 40 && /not synced in time/.test(l.msg))).toBe(true);

    api.stall(false); // the held requests fail; the retries succeed
    await waitFor('synced', () => h.ext.synced() && h.state.status === 'ok');
    expect(h.facts().state).toBe('synced');
  });

  it('reports a failing API while waiting for sync, and does not wait with wait_for_sync 0s', async () => {
    api.setDown(true);
    const h = make({ wait_for_sync: '200ms' }, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    expect(h.state.status).toBe('recoverable_error');
    expect(h.state.lastError).toMatch(/^Kubernetes API failing: pods: GET \/api\/v1\/pods: HTTP 503/);
    expect(h.facts().state).toBe('degraded');

    const quick = make({ wait_for_sync: '0s' }, { ...FAST, kubeConfig: api.kubeConfig() });
    const t0 = Date.now();
    await quick.start();
    expect(Date.now() - t0).toBeLessThan(100);
    expect(quick.ext.synced()).toBe(false);
  });

  it('a kubeconfig whose API refuses connections is not standalone: start waits, then degraded while it retries', async () => {
    const port = await closedPort();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-dead-api-'));
    try {
      const kubeconfig = path.join(dir, 'kubeconfig');
      await writeFile(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'gone',
              cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true },
            },
          ],
          users: [{ name: 'u', user: {} }],
          contexts: [{ name: 'gone', context: { cluster: 'gone', user: 'u' } }],
          'current-context': 'gone',
        }),
      );
      const h = make({ kubeconfig, wait_for_sync: '300ms' }, FAST);
      const t0 = Date.now();
      await h.start();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290); // the whole wait_for_sync
      expect(h.ext.standalone).toBe(false);
      expect(h.state.status).toBe('recoverable_error');
      expect(h.state.lastError).toBe(
        'Kubernetes API failing: pods: fetch failed (ECONNREFUSED); nodes: fetch failed (ECONNREFUSED); services: fetch failed (ECONNREFUSED); endpointslices: fetch failed (ECONNREFUSED)',
      );
      expect(h.facts()).toMatchObject({
        mode: 'cluster',
        state: 'degraded',
        api: `kubeconfig ${kubeconfig}`,
        informers: { pods: { synced: false, last_error: expect.stringMatching(/ECONNREFUSED/) } },
      });
      const warned = h.logs.filter((l) => l.level === 40).map((l) => l.msg);
      expect(warned.filter((m) => m === 'cannot list or watch; retrying with backoff')).toHaveLength(4);
      expect(warned).toContain('not synced in time; starting anyway: flows are labelled as metadata arrives');
      expect(h.logs.some((l) => /standalone/.test(l.msg))).toBe(false);
      // And it stays so, retrying, for as long as nothing answers.
      await waitFor('a few restarts', () => h.facts().informers.pods.restarts >= 3);
      expect(h.facts().state).toBe('degraded');
      expect(h.state.status).toBe('recoverable_error');
      expect(h.logs.filter((l) => l.level === 40)).toHaveLength(warned.length); // retries log at debug
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('standalone: true watches nothing', async () => {
    loadCluster();
    const h = make({ standalone: true }, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    await h.ext.shutdown();
    expect(api.requests).toEqual([]);
    expect(h.ext.standalone).toBe(true);
    expect(h.ext.synced()).toBe(true);
    expect(h.facts()).toMatchObject({ mode: 'standalone', state: 'standalone', informers: {} });
    expect(h.state.status).toBe('ok');
  });

  it('runs standalone, and logs why, when no kubeconfig exists anywhere', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-home-'));
    const saved = {
      HOME: process.env.HOME,
      KUBECONFIG: process.env.KUBECONFIG,
      HOST: process.env.KUBERNETES_SERVICE_HOST,
    };
    try {
      process.env.HOME = dir;
      delete process.env.KUBECONFIG;
      delete process.env.KUBERNETES_SERVICE_HOST;
      const h = make({});
      await h.start();
      expect(h.ext.standalone).toBe(true);
      expect(h.facts()).toMatchObject({ mode: 'standalone', state: 'standalone' });
      const line = h.logs.find((l) => /running standalone/.test(l.msg));
      expect(line?.level).toBe(30); // info
      expect(line?.reason).toContain('no Kubernetes API to watch');
      expect(line?.reason).toContain(path.join(dir, '.kube', 'config'));
      expect(line?.reason).toContain('KUBECONFIG');
    } finally {
      for (const [k, v] of Object.entries({
        HOME: saved.HOME,
        KUBECONFIG: saved.KUBECONFIG,
        KUBERNETES_SERVICE_HOST: saved.HOST,
      })) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('shuts down with lists and watches in flight, leaving nothing open', async () => {
    loadCluster();
    const h = make({ wait_for_sync: '0s' }, { ...FAST, kubeConfig: api.kubeConfig() });
    await h.start();
    await waitFor('four watches', () => api.openWatches() === 4);
    await h.ext.shutdown();
    await waitFor('the watches to close', () => api.openWatches() === 0, 1000);
    // No socket either (lists use a pool of their own, closed after each list).
    let open = await api.connections();
    for (let i = 0; i < 50 && open > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      open = await api.connections();
    }
    expect(open, 'client sockets left open').toBe(0);
    const requests = api.requests.length;
    api.add(pod({ name: 'after', node: 'node-1', ips: ['10.1.1.88'] }));
    await new Promise((r) => setTimeout(r, 100)); // nothing may happen: no event, no restart
    expect(api.requests.length).toBe(requests);
    expect(lookup(h.ext, '10.1.1.88')?.pod).toBeUndefined();

    // Lists in flight (the API accepts and does not answer) are aborted too.
    api.stall(true);
    const stalled = make({ wait_for_sync: '0s' }, { ...FAST, kubeConfig: api.kubeConfig() });
    await stalled.start();
    await waitFor('four held lists', () => api.requests.filter((r) => r.status === 0).length === 4);
    await stalled.ext.shutdown();
    await waitFor('no connection', async () => (await api.connections()) === 0);
  });
});

/** A local port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The objects a resource's ListWatch caches (white box: the memory claim depends on it). */
function cacheOf(ext: K8sMetadataExtension, resource: string) {
  const informers = (ext as unknown as { informers: Map<string, { lw: { list(): SlimCached[] } }> })
    .informers;
  return informers.get(resource)?.lw.list() ?? [];
}
interface SlimCached {
  metadata: Record<string, unknown>;
  spec?: unknown;
}
