// k8s_attributes → classify over ends the receiver named by pod UID (the ebpf receiver, from a local
// socket's cgroup): both read the extension's one resolution, so a hostNetwork pod, whose address is its
// node's, is that pod in dst.kind and traffic.class as in its labels; a UID the store does not know falls
// back to the address in both.
import { FlowBatch, type FlowInit } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { K8S_METADATA, type MetadataStore } from '@netmon/extensions';
import { describe, expect, it } from 'vitest';
import { k8sAttributesConfig } from '../k8s_attributes/config.js';
import { k8sAttributesProcessorFactory } from '../k8s_attributes/factory.js';
import { ClassifyProcessor } from './classify.js';
import { classifyConfig } from './config.js';
import { HostAddresses } from './local.js';
import { awsStore, flow, IP, staticMetadata } from './testdata/cluster.js';
import { eth0 } from './testdata/interfaces.js';

const EXPORTER_UID = 'u-exporter';
/** kube-apiserver's manifest hash: the UID the kubelet runs the static pod under, its cgroup's name. */
const APISERVER_HASH = 'a3e9d1c57b2f48e6901c4d8b7e2a5f13';

/** The AWS test cluster plus two hostNetwork pods on node-a: a DaemonSet's, and a static pod's mirror. */
function store(): MetadataStore {
  const s = awsStore();
  s.upsertPod({
    uid: EXPORTER_UID,
    name: 'node-exporter-q7x2k',
    namespace: 'monitoring',
    nodeName: 'node-a',
    phase: 'Running',
    hostNetwork: true,
    ips: [IP.nodeA],
    workloadKind: 'DaemonSet',
    workloadName: 'node-exporter',
    labels: {},
  });
  s.upsertPod({
    uid: 'e2c47a9d-1f5b-4c8e-b3a6-9d0f2e7c1b55',
    name: 'kube-apiserver-node-a',
    namespace: 'kube-system',
    nodeName: 'node-a',
    phase: 'Running',
    hostNetwork: true,
    ips: [IP.nodeA],
    workloadKind: 'Node',
    workloadName: 'node-a',
    labels: {},
    configHash: APISERVER_HASH,
  });
  return s;
}

/** The two processors in pipeline order, seen from node-a; this host's interfaces never count. */
async function enrich(flows: FlowInit[]) {
  const metadata = staticMetadata(store(), 'node-a');
  const attributes = await k8sAttributesProcessorFactory.create(
    testSettings('processor', 'k8s_attributes', { extensions: new Map([[K8S_METADATA, metadata]]) }),
    k8sAttributesConfig.parse({}),
    'flows',
  );
  const classify = new ClassifyProcessor(
    testSettings('processor', 'classify'),
    classifyConfig.parse({ exactly_once: false }),
    metadata,
    undefined,
    new HostAddresses({ interfaces: eth0() }),
  );
  const labelled = (await attributes.process(FlowBatch.from(flows))) as FlowBatch;
  const out = classify.process(labelled);
  return [...out].map((r) => ({
    kind: r.get('dst.kind'),
    class: r.get('traffic.class'),
    src: r.get('src.k8s.workload.name') ?? r.get('src.k8s.node.name'),
    dst: r.get('dst.k8s.workload.name') ?? r.get('dst.k8s.node.name'),
    dstPod: r.get('dst.k8s.pod.name'),
  }));
}

const uid = (key: 'src' | 'dst', value: string) => ({ attributes: { [`${key}.k8s.pod.uid`]: value } });

describe('classify and k8s_attributes on ends named by pod UID', () => {
  it('a hostNetwork pod named by UID is dst.kind pod with its own workload; by address it is its node', async () => {
    const rows = await enrich([
      flow(IP.web, IP.nodeA, { dstPort: 9100, ...uid('dst', EXPORTER_UID) }),
      flow(IP.db, IP.nodeA, { dstPort: 9100, ...uid('dst', EXPORTER_UID) }),
      flow(IP.web, IP.nodeA, { dstPort: 9100 }),
    ]);
    expect(rows[0]).toEqual({
      kind: 'pod',
      class: 'same_node',
      src: 'web',
      dst: 'node-exporter',
      dstPod: 'node-exporter-q7x2k',
    });
    // Scraped from node-b, in another zone: still the pod's bytes, and still cross-zone.
    expect(rows[1]).toEqual({
      kind: 'pod',
      class: 'cross_zone',
      src: 'db',
      dst: 'node-exporter',
      dstPod: 'node-exporter-q7x2k',
    });
    expect(rows[2]).toEqual({
      kind: 'node',
      class: 'same_node',
      src: 'web',
      dst: 'node-a',
      dstPod: undefined,
    });
  });

  it('the source named by UID is the hostNetwork pod’s workload; a static pod is found by its manifest hash', async () => {
    const rows = await enrich([
      flow(IP.nodeA, IP.db, { dstPort: 5432, ...uid('src', EXPORTER_UID) }),
      flow(IP.web, IP.nodeA, { dstPort: 6443, ...uid('dst', APISERVER_HASH) }),
    ]);
    expect(rows[0]).toMatchObject({ kind: 'pod', class: 'cross_zone', src: 'node-exporter', dst: 'db' });
    expect(rows[1]).toMatchObject({ kind: 'pod', dstPod: 'kube-apiserver-node-a', dst: 'node-a' });
  });

  it('a UID the store does not know falls back to the address in both', async () => {
    const rows = await enrich([
      flow(IP.web, IP.nodeA, { dstPort: 9100, ...uid('dst', 'u-unknown') }),
      flow(IP.nodeA, IP.db, { dstPort: 5432, ...uid('src', 'u-unknown') }),
    ]);
    expect(rows[0]).toEqual({
      kind: 'node',
      class: 'same_node',
      src: 'web',
      dst: 'node-a',
      dstPod: undefined,
    });
    expect(rows[1]).toEqual({ kind: 'pod', class: 'cross_zone', src: 'node-a', dst: 'db', dstPod: 'db-0' });
  });
});
