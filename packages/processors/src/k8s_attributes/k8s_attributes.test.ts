import { FlowBatch, type FlowInit, type StringColumn } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { K8S_METADATA, type K8sMetadata, MetadataStore } from '@netmon/extensions';
import { describe, expect, it } from 'vitest';
import { awsStore, flow, IP, staticMetadata } from '../classify/testdata/cluster.js';
import { k8sAttributesConfig } from './config.js';
import { k8sAttributesProcessorFactory } from './factory.js';

/** A k8s_attributes processor over `store`, which the test may change between batches. */
async function processorOver(store: MetadataStore, config: unknown = {}) {
  const settings = testSettings('processor', 'k8s_attributes', {
    extensions: new Map([[K8S_METADATA, staticMetadata(store)]]),
  });
  return k8sAttributesProcessorFactory.create(settings, k8sAttributesConfig.parse(config), 'flows');
}

async function enrich(
  flows: FlowInit[],
  config: unknown = {},
  metadata: K8sMetadata = staticMetadata(awsStore()),
) {
  const settings = testSettings('processor', 'k8s_attributes', {
    extensions: new Map([[K8S_METADATA, metadata]]),
  });
  const p = await k8sAttributesProcessorFactory.create(settings, k8sAttributesConfig.parse(config), 'flows');
  return (await p.process(FlowBatch.from(flows))) as FlowBatch;
}

describe('k8s_attributes', () => {
  it('labels both ends; a DNAT’ed flow gets its backend pod and the Service dialled', async () => {
    const out = await enrich([flow(IP.web, IP.dbService, { backendIp: IP.db, backendPort: 5432 })], {
      pod_labels: ['app', 'missing'],
    });
    expect(out.attributes(0)).toEqual({
      'src.k8s.namespace.name': 'shop',
      'src.k8s.pod.name': 'web-7d9f8-abcde',
      'src.k8s.workload.kind': 'Deployment',
      'src.k8s.workload.name': 'web',
      'src.k8s.node.name': 'node-a',
      'src.cloud.availability_zone': 'us-east-1a',
      'src.cloud.region': 'us-east-1',
      'src.k8s.pod.label.app': 'web',
      'dst.k8s.namespace.name': 'shop',
      'dst.k8s.pod.name': 'db-0',
      'dst.k8s.workload.kind': 'StatefulSet',
      'dst.k8s.workload.name': 'db',
      'dst.k8s.node.name': 'node-b',
      'dst.cloud.availability_zone': 'us-east-1b',
      'dst.cloud.region': 'us-east-1',
      'dst.k8s.pod.label.app': 'db',
      'dst.k8s.service.name': 'db',
      'flow.reporter': 'initiator',
      'flow.initiator_known': true,
    });
  });

  it('a flow straight to a backend pod still names its Service (via EndpointSlices and the port)', async () => {
    const out = await enrich([
      flow(IP.web, IP.db, { dstPort: 5432 }),
      flow(IP.web, IP.db, { dstPort: 9999 }),
    ]);
    expect(out.getAttribute(0, 'dst.k8s.service.name')).toBe('db');
    expect(out.getAttribute(1, 'dst.k8s.service.name')).toBeUndefined();
  });

  it('nodes, the API server endpoint, the outside world; which end is on this node', async () => {
    const out = await enrich([
      flow(IP.nodeA, IP.apiServer),
      flow(IP.client, IP.web),
      flow(IP.web, IP.internet, { flags: 0 }),
      flow(IP.db, IP.api),
    ]);
    expect(out.attributes(0)).toMatchObject({
      'src.k8s.node.name': 'node-a',
      'src.cloud.availability_zone': 'us-east-1a',
      'dst.k8s.namespace.name': 'default',
      'dst.k8s.service.name': 'kubernetes',
      'flow.reporter': 'initiator',
    });
    expect(out.attributes(0)['src.k8s.pod.name']).toBeUndefined();
    expect(out.attributes(1)).toMatchObject({
      'dst.k8s.pod.name': 'web-7d9f8-abcde',
      'flow.reporter': 'responder',
    });
    expect(Object.keys(out.attributes(1)).filter((k) => k.startsWith('src.'))).toEqual([]);
    // The receiver did not know who opened it: src is only the local end, not the initiator.
    expect(out.attributes(2)).toMatchObject({
      'flow.initiator_known': false,
      'src.k8s.pod.name': 'web-7d9f8-abcde',
    });
    expect(out.attributes(2)['flow.reporter']).toBeUndefined();
    // Neither end on this node (traffic this node only forwards): no reporter.
    expect(out.attributes(3)['flow.reporter']).toBeUndefined();
  });

  it('codes are computed per distinct entity: a large batch with few pods labels every row', async () => {
    const flows: FlowInit[] = [];
    for (let i = 0; i < 5000; i++) flows.push(flow(i % 2 ? IP.web : IP.cache, i % 3 ? IP.db : IP.internet));
    const out = await enrich(flows);
    for (let i = 0; i < 5000; i++) {
      expect(out.getAttribute(i, 'src.k8s.pod.name')).toBe(i % 2 ? 'web-7d9f8-abcde' : 'cache-0');
      expect(out.getAttribute(i, 'dst.k8s.pod.name')).toBe(i % 3 ? 'db-0' : undefined);
    }
    expect((out.column('src.k8s.pod.name') as { dict: string[] }).dict).toHaveLength(3);
  });

  it('batches share one dictionary per column; a column that already holds values gets its own codes', async () => {
    const store = awsStore();
    const p = await processorOver(store);
    const first = (await p.process(FlowBatch.from([flow(IP.web, IP.db)]))) as FlowBatch;
    const second = (await p.process(FlowBatch.from([flow(IP.cache, IP.web)]))) as FlowBatch;
    const a = first.column('src.k8s.pod.name') as StringColumn;
    const b = second.column('src.k8s.pod.name') as StringColumn;
    expect(a.shared && b.shared).toBe(true);
    expect(a.dict).toBe(b.dict);
    expect([first.getAttribute(0, 'src.k8s.pod.name'), second.getAttribute(0, 'src.k8s.pod.name')]).toEqual([
      'web-7d9f8-abcde',
      'cache-0',
    ]);
    // A later writer of that column copies the dictionary first: the other batch is untouched.
    a.set(0, 'renamed');
    expect(first.getAttribute(0, 'src.k8s.pod.name')).toBe('renamed');
    expect(a.shared).toBe(false);
    expect(second.getAttribute(0, 'src.k8s.pod.name')).toBe('cache-0');
    expect(b.dict).not.toContain('renamed');

    // Replayed records already carry the column (with other values): ours are added to its dictionary.
    const replayed = FlowBatch.from([
      flow(IP.internet, IP.client, { attributes: { 'src.k8s.pod.name': 'from-the-file' } }),
      flow(IP.db, IP.web),
    ]);
    const out = (await p.process(replayed)) as FlowBatch;
    expect((out.column('src.k8s.pod.name') as StringColumn).shared).toBe(false);
    expect([0, 1].map((i) => out.getAttribute(i, 'src.k8s.pod.name'))).toEqual(['from-the-file', 'db-0']);
    // A replayed value the entity does not have goes: a node is no pod.
    const node = (await p.process(
      FlowBatch.from([flow(IP.nodeA, IP.db, { attributes: { 'src.k8s.pod.name': 'stale' } })]),
    )) as FlowBatch;
    expect(node.getAttribute(0, 'src.k8s.node.name')).toBe('node-a');
    expect(node.getAttribute(0, 'src.k8s.pod.name')).toBeUndefined();
    expect(out.getAttribute(1, 'dst.k8s.pod.name')).toBe('web-7d9f8-abcde');
  });

  it('under churn the dictionaries start over; batches already made keep the values they had', async () => {
    const store = awsStore();
    const p = await processorOver(store);
    const renamed = (i: number) => {
      store.upsertPod({
        uid: `churn-${i}`,
        name: `churn-${i}`,
        namespace: 'churn',
        nodeName: 'node-b',
        phase: 'Running',
        hostNetwork: false,
        ips: ['10.1.2.250'],
        workloadKind: 'Pod',
        workloadName: `churn-${i}`,
        labels: {},
      });
      if (i > 0) store.deletePod(`churn-${i - 1}`);
    };
    renamed(0);
    const early = (await p.process(FlowBatch.from([flow(IP.web, '10.1.2.250')]))) as FlowBatch;
    const dict = (early.column('dst.k8s.pod.name') as StringColumn).dict;
    for (let i = 1; i <= 2000; i++) {
      renamed(i);
      await p.process(FlowBatch.from([flow(IP.web, '10.1.2.250')]));
    }
    const late = (await p.process(FlowBatch.from([flow(IP.web, '10.1.2.250')]))) as FlowBatch;
    const lateDict = (late.column('dst.k8s.pod.name') as StringColumn).dict;
    // Bounded by the store, not by every pod name ever seen.
    expect(lateDict).not.toBe(dict);
    expect(lateDict.length).toBeLessThan(1200);
    expect(early.getAttribute(0, 'dst.k8s.pod.name')).toBe('churn-0');
    expect(late.getAttribute(0, 'dst.k8s.pod.name')).toBe('churn-2000');
  });

  it('entity ids reused after a pod is deleted do not leak the old pod’s labels into later batches', async () => {
    const store = awsStore();
    const p = await processorOver(store);
    await p.process(FlowBatch.from([flow(IP.web, IP.cache)]));
    store.deletePod('u-cache');
    store.upsertPod({
      uid: 'u-new',
      name: 'new-pod',
      namespace: 'other',
      nodeName: 'node-b',
      phase: 'Running',
      hostNetwork: false,
      ips: [IP.cache],
      workloadKind: 'Pod',
      workloadName: 'new-pod',
      labels: {},
    });
    const out = (await p.process(FlowBatch.from([flow(IP.web, IP.cache)]))) as FlowBatch;
    expect(out.attributes(0)).toMatchObject({
      'dst.k8s.pod.name': 'new-pod',
      'dst.cloud.availability_zone': 'us-east-1b',
    });
  });

  it('the store growing between two batches does not mix up codes of the earlier batch', async () => {
    const store = awsStore();
    const p = await processorOver(store);
    await p.process(FlowBatch.from([flow(IP.web, IP.cache)]));
    for (let i = 0; i < 300; i++) {
      store.upsertPod({
        uid: `filler-${i}`,
        name: `filler-${i}`,
        namespace: 'fill',
        nodeName: 'node-b',
        phase: 'Running',
        hostNetwork: false,
        ips: [`10.1.2.${(i % 200) + 20}`],
        workloadKind: 'Pod',
        workloadName: `filler-${i}`,
        labels: {},
      });
    }
    const out = (await p.process(FlowBatch.from([flow(IP.db, IP.web), flow(IP.web, IP.cache)]))) as FlowBatch;
    expect([0, 1].map((i) => out.getAttribute(i, 'src.k8s.pod.name'))).toEqual(['db-0', 'web-7d9f8-abcde']);
    expect([0, 1].map((i) => out.getAttribute(i, 'dst.k8s.pod.name'))).toEqual([
      'web-7d9f8-abcde',
      'cache-0',
    ]);
  });

  it('standalone: flows pass unlabelled', async () => {
    const metadata = { ...staticMetadata(new MetadataStore()), standalone: true };
    const out = await enrich([flow(IP.web, IP.db)], {}, metadata);
    expect(out.attributeKeys()).toEqual([]);
  });
});

/** awsStore plus a hostNetwork DaemonSet pod on node-a: its address is the node's. */
function storeWithHostNetworkPod(): MetadataStore {
  const store = awsStore();
  store.upsertPod({
    uid: 'u-exporter',
    name: 'node-exporter-q7x2k',
    namespace: 'monitoring',
    nodeName: 'node-a',
    phase: 'Running',
    hostNetwork: true,
    ips: [IP.nodeA],
    workloadKind: 'DaemonSet',
    workloadName: 'node-exporter',
    labels: { app: 'node-exporter' },
  });
  return store;
}

const EXPORTER = {
  'k8s.namespace.name': 'monitoring',
  'k8s.pod.name': 'node-exporter-q7x2k',
  'k8s.workload.kind': 'DaemonSet',
  'k8s.workload.name': 'node-exporter',
  'k8s.node.name': 'node-a',
  'cloud.availability_zone': 'us-east-1a',
  'cloud.region': 'us-east-1',
  'k8s.pod.label.app': 'node-exporter',
};
const end = (prefix: 'src' | 'dst', attrs: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(attrs)
      .filter(([k]) => k.startsWith(`${prefix}.`) && k !== `${prefix}.k8s.pod.uid`)
      .map(([k, v]) => [k.slice(prefix.length + 1), v]),
  );

describe('k8s_attributes: the pod a receiver named by UID (a local socket’s cgroup)', () => {
  const enrichUid = async (flows: FlowInit[], store = storeWithHostNetworkPod()) =>
    enrich(flows, { pod_labels: ['app'] }, staticMetadata(store));

  it('a hostNetwork pod sharing its node’s IP gets its own bytes when its UID is given', async () => {
    const out = await enrichUid([
      flow(IP.nodeA, IP.db, { attributes: { 'src.k8s.pod.uid': 'u-exporter' } }),
      flow(IP.nodeA, IP.db),
    ]);
    expect(end('src', out.attributes(0))).toEqual(EXPORTER);
    expect(out.attributes(0)).toMatchObject({ 'dst.k8s.pod.name': 'db-0', 'flow.reporter': 'initiator' });
    // The same address without a UID is the node's, as before.
    expect(end('src', out.attributes(1))).toEqual({
      'k8s.node.name': 'node-a',
      'cloud.availability_zone': 'us-east-1a',
      'cloud.region': 'us-east-1',
    });
  });

  it('without the column at all, ends are found by address', async () => {
    const out = await enrichUid([flow(IP.nodeA, IP.db), flow(IP.web, IP.nodeA)]);
    expect(out.getAttribute(0, 'src.k8s.node.name')).toBe('node-a');
    expect(out.getAttribute(0, 'src.k8s.pod.name')).toBeUndefined();
    expect(out.getAttribute(1, 'dst.k8s.pod.name')).toBeUndefined();
    expect(out.getAttribute(1, 'dst.k8s.node.name')).toBe('node-a');
  });

  it('the destination socket’s pod: a scrape of a hostNetwork pod is the pod’s, from here and from elsewhere', async () => {
    const out = await enrichUid([
      flow(IP.web, IP.nodeA, { dstPort: 9100, attributes: { 'dst.k8s.pod.uid': 'u-exporter' } }),
      flow(IP.db, IP.nodeA, { dstPort: 9100, attributes: { 'dst.k8s.pod.uid': 'u-exporter' } }),
    ]);
    expect(end('dst', out.attributes(0))).toEqual(EXPORTER);
    expect(out.getAttribute(0, 'src.k8s.pod.name')).toBe('web-7d9f8-abcde');
    expect(out.getAttribute(0, 'flow.reporter')).toBe('initiator');
    expect(end('dst', out.attributes(1))).toEqual(EXPORTER);
    expect(out.getAttribute(1, 'flow.reporter')).toBe('responder');
  });

  it('an end named by UID is labelled exactly as an address match to that pod would be', async () => {
    const out = await enrichUid([
      flow(IP.web, IP.db),
      // An address nobody owns, in no pod CIDR (a pod IP not in its status yet): the UID still names it.
      flow('10.60.0.77', IP.db, { attributes: { 'src.k8s.pod.uid': 'u-web' } }),
      flow(IP.client, '10.60.0.78', { attributes: { 'dst.k8s.pod.uid': 'u-web' } }),
    ]);
    const byAddress = end('src', out.attributes(0));
    expect(byAddress['k8s.pod.name']).toBe('web-7d9f8-abcde');
    expect(end('src', out.attributes(1))).toEqual(byAddress);
    expect(end('dst', out.attributes(2))).toEqual(byAddress);
    // Only the UID puts that end on this node: the reporter follows it.
    expect(out.getAttribute(1, 'flow.reporter')).toBe('initiator');
    expect(out.getAttribute(2, 'flow.reporter')).toBe('responder');
  });

  it('a UID the store does not know, or no UID on a row, falls back to the address', async () => {
    const out = await enrichUid([
      flow(IP.nodeA, IP.db, { attributes: { 'src.k8s.pod.uid': 'u-unknown' } }),
      flow(IP.web, IP.db),
      flow(IP.nodeA, IP.cache, {
        attributes: { 'src.k8s.pod.uid': 'u-exporter', 'dst.k8s.pod.uid': 'u-nobody' },
      }),
    ]);
    expect(out.getAttribute(0, 'src.k8s.pod.name')).toBeUndefined();
    expect(out.getAttribute(0, 'src.k8s.node.name')).toBe('node-a');
    expect(out.getAttribute(1, 'src.k8s.pod.name')).toBe('web-7d9f8-abcde');
    expect(out.getAttribute(2, 'src.k8s.pod.name')).toBe('node-exporter-q7x2k');
    expect(out.getAttribute(2, 'dst.k8s.pod.name')).toBe('cache-0');
    // A UID names the end; it is not a label the processor writes or takes away.
    expect(out.getAttribute(2, 'src.k8s.pod.uid')).toBe('u-exporter');
  });

  it('a UID column sharing its dictionary across batches follows the store: a deleted pod falls back', async () => {
    const store = storeWithHostNetworkPod();
    const p = await processorOver(store, { pod_labels: ['app'] });
    const uids = ['', 'u-exporter', 'u-web'];
    const batch = () => {
      const b = FlowBatch.from([flow(IP.nodeA, IP.db), flow(IP.nodeA, IP.db), flow(IP.web, IP.db)]);
      const col = b.ensureColumn('src.k8s.pod.uid', 'string');
      col.share(uids);
      col.codes.set([1, 0, 2]);
      return b;
    };
    const first = (await p.process(batch())) as FlowBatch;
    expect([0, 1, 2].map((i) => first.getAttribute(i, 'src.k8s.pod.name'))).toEqual([
      'node-exporter-q7x2k',
      undefined,
      'web-7d9f8-abcde',
    ]);
    store.deletePod('u-exporter');
    // The freed entity id goes to another pod: a stale answer would name it.
    store.upsertPod({
      uid: 'u-other',
      name: 'other',
      namespace: 'x',
      nodeName: 'node-b',
      phase: 'Running',
      hostNetwork: false,
      ips: ['10.1.2.50'],
      workloadKind: 'Pod',
      workloadName: 'other',
      labels: {},
    });
    const second = (await p.process(batch())) as FlowBatch;
    expect(second.getAttribute(0, 'src.k8s.pod.name')).toBeUndefined();
    expect(second.getAttribute(0, 'src.k8s.node.name')).toBe('node-a');
    expect(second.getAttribute(2, 'src.k8s.pod.name')).toBe('web-7d9f8-abcde');
    // The shared dictionary grows: new codes are resolved too.
    uids.push('u-other');
    const third = batch();
    (third.column('src.k8s.pod.uid') as StringColumn).codes[1] = 3;
    const out = (await p.process(third)) as FlowBatch;
    expect(out.getAttribute(1, 'src.k8s.pod.name')).toBe('other');
  });
});
