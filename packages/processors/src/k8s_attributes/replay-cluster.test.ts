// configs/examples/replay-cluster.json is the cluster the replay sample
// (packages/receivers/src/file/testdata/sample-flows.jsonl) was recorded in: every in-cluster address the
// sample names must resolve from it to the pod or node the sample's attributes name, and the addresses the
// sample leaves outside the cluster (the NLB's 10.0.x.200, the VPC resolver, the internet) must stay out.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFlowRecord, FlowBatch, type FlowInit } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { K8S_METADATA, k8sMetadataConfig } from '@netmon/extensions';
import { K8sMetadataExtension } from '@netmon/extensions/k8s_metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifyConfig } from '../classify/config.js';
import { classifyProcessorFactory } from '../classify/factory.js';
import { costProcessorConfig } from '../cost/config.js';
import { costProcessorFactory } from '../cost/factory.js';
import { k8sAttributesConfig } from '../k8s_attributes/config.js';
import { k8sAttributesProcessorFactory } from '../k8s_attributes/factory.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const CLUSTER = path.join(ROOT, 'configs/examples/replay-cluster.json');
const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

type Side = 'src' | 'dst';
/** The sample's k8s attributes of one end, without the side prefix. */
const K8S_KEYS = [
  'k8s.namespace.name',
  'k8s.pod.name',
  'k8s.workload.kind',
  'k8s.workload.name',
  'k8s.node.name',
  'cloud.availability_zone',
] as const;

let flows: FlowInit[];
let ext: K8sMetadataExtension;
/** namespace/name → node of the hostNetwork pods in the snapshot, read from the file itself. */
const hostNetwork = new Map<string, string>();

beforeAll(async () => {
  const lines = (await readFile(SAMPLE, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  flows = lines.map((line) => {
    const r = decodeFlowRecord(line);
    if (!r.ok) throw new Error(r.error);
    return r.flow;
  });
  const cluster = JSON.parse(await readFile(CLUSTER, 'utf8'));
  for (const item of cluster.items) {
    if (item.kind === 'Pod' && item.spec.hostNetwork === true) {
      hostNetwork.set(`${item.metadata.namespace}/${item.metadata.name}`, item.spec.nodeName);
    }
  }
  ext = new K8sMetadataExtension(
    testSettings('extension', 'k8s_metadata'),
    k8sMetadataConfig.parse({ snapshot: CLUSTER }),
    { env: {} },
  );
  await ext.start();
});

function sideOf(f: FlowInit, side: Side): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of K8S_KEYS) {
    const v = f.attributes?.[`${side}.${key}`];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

describe('the replay sample’s cluster snapshot', () => {
  it('is a kubectl List of pods, nodes, services and EndpointSlices, every item applied', async () => {
    expect(ext.synced()).toBe(true);
    expect(ext.provider()).toBe('aws');
    expect(ext.store.sizes()).toMatchObject({ pods: 15, nodes: 3, services: 11, endpointSlices: 12 });
    const facts = (ext.facts() as { snapshot: Record<string, unknown> }).snapshot;
    expect(facts).toMatchObject({
      skipped_kinds: {},
      invalid: { pods: 0, nodes: 0, services: 0, endpointslices: 0, no_kind: 0 },
    });
    expect(ext.facts()).toMatchObject({ warnings: [] });
  });

  it('resolves every in-cluster address of the sample to the pod or node the sample names', () => {
    const batch = FlowBatch.from(flows);
    const r = ext.resolve(batch);
    let checked = 0;
    for (let i = 0; i < flows.length; i++) {
      for (const side of ['src', 'dst'] as const) {
        const f = flows[i];
        const ip = side === 'src' ? f.srcIp : f.dstIp;
        const id = side === 'src' ? r.src[i] : r.dst[i];
        const want = sideOf(f, side);
        const where = `${side} ${ip} of sample line ${i + 1}`;
        const e = id < 0 ? undefined : ext.store.entity(id);
        if (Object.keys(want).length === 0) {
          // Outside the cluster in the sample: the NLB's addresses, the VPC resolver, the internet.
          expect(e, where).toBeUndefined();
          continue;
        }
        expect(e, where).toBeDefined();
        if (!e) continue;
        const got = {
          'k8s.node.name': e.nodeName,
          'cloud.availability_zone': ext.store.zoneOf(e),
        } as Record<string, unknown>;
        const pod = want['k8s.pod.name'] as string | undefined;
        const hostNode = pod && hostNetwork.get(`${want['k8s.namespace.name']}/${pod}`);
        if (pod && !hostNode) {
          expect(e.kind, where).toBe('pod');
          Object.assign(got, {
            'k8s.namespace.name': e.namespace,
            'k8s.pod.name': e.pod,
            'k8s.workload.kind': e.workloadKind,
            'k8s.workload.name': e.workloadName,
          });
          expect(got, where).toEqual(want);
        } else {
          // A node's address, or a hostNetwork pod's (the sample names Cilium's agent: its cgroup said so).
          // By address it is the node's; the snapshot holds that pod on that node.
          expect(e.kind, where).toBe('node');
          if (hostNode) expect(hostNode, where).toBe(want['k8s.node.name']);
          expect(got, where).toEqual({
            'k8s.node.name': want['k8s.node.name'],
            'cloud.availability_zone': want['cloud.availability_zone'],
          });
        }
        expect(ext.store.regionOf(e), where).toBe('eu-west-1');
        checked++;
      }
    }
    // Every record has at least its source in the cluster, except inbound ones from the NLB.
    expect(checked).toBeGreaterThan(flows.length);
  });

  it('gives k8s_attributes → classify → cost the sample’s workloads, zones and classes, and dollars', async () => {
    const extensions = new Map([[K8S_METADATA, ext]]);
    const settings = (type: string) => testSettings('processor', type, { extensions });
    const attrs = await k8sAttributesProcessorFactory.create(
      settings('k8s_attributes'),
      k8sAttributesConfig.parse({}),
      'flows',
    );
    const classify = await classifyProcessorFactory.create(
      settings('classify'),
      classifyConfig.parse({
        // The NLB's nodes are no Service address on AWS (its status names it by DNS only).
        rules: [{ name: 'shop NLB', cidrs: ['10.0.1.200/32', '10.0.2.200/32'], class: 'load_balancer' }],
        // The sample is every node's flows at once, each connection once already.
        exactly_once: false,
      }),
      'flows',
    );
    const cost = await costProcessorFactory.create(settings('cost'), costProcessorConfig.parse({}), 'flows');
    let batch = FlowBatch.from(flows);
    for (const p of [attrs, classify, cost]) batch = (await p.process(batch)) as FlowBatch;
    expect(batch.length).toBe(flows.length);
    const byClass = new Map<string, number>();
    let googleapis = 0;
    let amazonaws = 0;
    for (let i = 0; i < batch.length; i++) {
      const got = batch.attributes(i);
      const want = flows[i].attributes ?? {};
      const where = `sample line ${i + 1}`;
      // The sample's own class, for every row: on this AWS cluster (the nodes' spec.providerID) the
      // frontend's calls to www.googleapis.com are internet egress, and sqs.eu-west-1.amazonaws.com is
      // cloud_api.
      expect(got['traffic.class'], where).toBe(want['traffic.class']);
      expect(got['dst.kind'], where).toBe(want['dst.kind']);
      for (const side of ['src', 'dst'] as const) {
        const pod = want[`${side}.k8s.pod.name`] as string | undefined;
        const isHostPod =
          pod !== undefined && hostNetwork.has(`${want[`${side}.k8s.namespace.name`]}/${pod}`);
        for (const key of K8S_KEYS) {
          const k = `${side}.${key}`;
          // A hostNetwork pod is its node by address: only node and zone remain.
          if (isHostPod && key !== 'k8s.node.name' && key !== 'cloud.availability_zone') continue;
          expect(got[k], `${where} ${k}`).toBe(want[k]);
        }
      }
      const usd = got['cost.usd'];
      expect(typeof usd, where).toBe('number');
      const domain = String(want['dst.domain']);
      if (domain === 'www.googleapis.com') {
        // Another cloud's API from AWS: billed as internet egress, at eu-west-1's $0.09/GB for the bytes sent.
        googleapis++;
        expect(got['traffic.class'], where).toBe('internet_egress');
        expect(usd, where).toBeCloseTo((Number(batch.txBytes[i]) / 1e9) * 0.09, 15);
      } else if (domain.endsWith('.amazonaws.com')) {
        amazonaws++;
        expect(got['traffic.class'], where).toBe('cloud_api');
        expect(usd, where).toBe(0);
      }
      const cls = String(got['traffic.class']);
      byClass.set(cls, (byClass.get(cls) ?? 0) + (usd as number));
    }
    // Cross-zone and internet bytes cost money, same-node bytes do not.
    expect(byClass.get('cross_zone')).toBeGreaterThan(0);
    expect(byClass.get('internet_egress')).toBeGreaterThan(0);
    expect(byClass.get('load_balancer')).toBeGreaterThan(0);
    expect(byClass.get('same_node')).toBe(0);
    expect([googleapis, amazonaws]).toEqual([6, 5]); // every such row of the sample
  });
});
