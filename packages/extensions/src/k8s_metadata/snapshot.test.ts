// The snapshot source: kubectl's JSON files (testdata/, written as kubectl prints them) read into the same
// store the informers fill, through the same normalizers; every way a file can be wrong.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlowBatch, FlowFlags, type FlowInit, StatusBoard } from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8sMetadataConfig } from './config.js';
import { K8sMetadataExtension } from './extension.js';
import { k8sMetadataExtensionFactory } from './factory.js';
import { firstJsonError, readSnapshotFile } from './snapshot.js';
import type { Entity } from './store.js';

const TESTDATA = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const td = (name: string) => path.join(TESTDATA, name);
/** `kubectl get nodes`, then `get pods,services,endpointslices -A`, `get all -n web`, a raw PodList, one pod. */
const ALL = ['nodes.json', 'workloads.json', 'get-all-web.json', 'podlist-batch.json', 'pod-debug.json'];
const NODE_A = 'ip-10-1-1-20.eu-west-1.compute.internal';
const NODE_B = 'ip-10-1-2-30.eu-west-1.compute.internal';

describeConformance(k8sMetadataExtensionFactory, {
  config: { snapshot: 'workloads.json', node_name: NODE_A },
  configDir: TESTDATA,
});

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

/** An extension over snapshot files, with its log, status board and self-metrics readable. */
function make(config: Record<string, unknown>, opts: { env?: NodeJS.ProcessEnv; configDir?: string } = {}) {
  const board = new StatusBoard();
  const settings = testSettings('extension', 'k8s_metadata', {
    board,
    configDir: opts.configDir ?? TESTDATA,
  });
  const logs: LogLine[] = [];
  settings.logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const reader = new TestReader();
  settings.meter = new MeterProvider({ readers: [reader] }).getMeter('test');
  const ext = new K8sMetadataExtension(settings, k8sMetadataConfig.parse(config), { env: opts.env ?? {} });
  const metric = async (name: string) => {
    const { resourceMetrics } = await reader.collect();
    const m = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((x) => x.descriptor.name === name);
    return (m?.dataPoints ?? []).map((p) => ({ attributes: p.attributes, value: p.value }));
  };
  return { ext, logs, details: () => board.all()[0].details?.(), metric };
}

const flow = (srcIp: string, dstIp: string, dstPort: number, more: Partial<FlowInit> = {}): FlowInit => ({
  timeStart: 0,
  timeEnd: 10_000,
  protocol: 6,
  srcIp,
  srcPort: 40000,
  dstIp,
  dstPort,
  txBytes: 100,
  rxBytes: 100,
  txPackets: 1,
  rxPackets: 1,
  flags: FlowFlags.InitiatorKnown,
  ...more,
});

/** What an entity says about itself, with its zone and region: the facts flows are labelled with. */
function describeEntity(ext: K8sMetadataExtension, id: number) {
  if (id < 0) return null;
  const e = ext.store.entity(id) as Entity;
  return {
    kind: e.kind,
    namespace: e.namespace,
    pod: e.pod,
    workload: e.workloadKind && `${e.workloadKind}/${e.workloadName}`,
    node: e.nodeName,
    service: e.service,
    zone: ext.store.zoneOf(e),
    region: ext.store.regionOf(e),
    controlPlane: e.controlPlane,
  };
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'netmon-snapshot-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('snapshot config', () => {
  it('takes one path or a list, and nothing empty', () => {
    expect(k8sMetadataConfig.parse({ snapshot: 'a.json' }).snapshot).toBe('a.json');
    expect(k8sMetadataConfig.parse({ snapshot: ['a.json', 'b.json'] }).snapshot).toEqual([
      'a.json',
      'b.json',
    ]);
    expect(k8sMetadataConfig.safeParse({ snapshot: '' }).success).toBe(false);
    expect(k8sMetadataConfig.safeParse({ snapshot: [] }).success).toBe(false);
    expect(k8sMetadataConfig.safeParse({ snapshot: 3 }).success).toBe(false);
  });

  it('refuses kubeconfig or standalone beside it, naming the key', () => {
    const withKc = k8sMetadataConfig.safeParse({ snapshot: 'a.json', kubeconfig: 'kc.yaml' });
    expect(withKc.error?.issues.map((i) => [i.path.join('::'), i.message])).toEqual([
      [
        'snapshot',
        'snapshot cannot be combined with kubeconfig: the extension reads the cluster from the snapshot files or watches the API, not both; remove one of the two',
      ],
    ]);
    const withStandalone = k8sMetadataConfig.safeParse({ snapshot: ['a.json'], standalone: true });
    expect(withStandalone.error?.issues.map((i) => [i.path.join('::'), i.message])).toEqual([
      [
        'snapshot',
        'snapshot cannot be combined with standalone: true (standalone reads no cluster at all); remove one of the two',
      ],
    ]);
    expect(k8sMetadataConfig.safeParse({ snapshot: 'a.json', standalone: false }).success).toBe(true);
  });
});

describe('validate', () => {
  const validate = (config: Record<string, unknown>, configDir = TESTDATA) =>
    k8sMetadataExtensionFactory.validate?.(k8sMetadataConfig.parse(config), { configDir });

  it('accepts readable snapshots, relative to the config directory', async () => {
    expect(await validate({ snapshot: ALL })).toEqual([]);
    expect(await validate({ snapshot: 'testdata/nodes.json' }, path.dirname(TESTDATA))).toEqual([]);
    // Unsupported kinds and items without fields are the start's to skip and count, not errors.
    expect(await validate({ snapshot: 'invalid-items.json' })).toEqual([]);
  });

  it('names the key (the list index when a list), the resolved path and the problem', async () => {
    expect(await validate({ snapshot: 'missing.json' })).toEqual([
      { key: 'snapshot', message: `${td('missing.json')} does not exist` },
    ]);
    expect(await validate({ snapshot: ['nodes.json', 'missing.json', '.'] })).toEqual([
      { key: 'snapshot::1', message: `${td('missing.json')} does not exist` },
      { key: 'snapshot::2', message: `${TESTDATA} is not a file` },
    ]);
  });

  it('says where JSON breaks: line and column, for every kind of V8 message', async () => {
    // kubectl interrupted: the file ends mid-object, so the error is at its very end.
    const truncated = await readFile(td('truncated.json'), 'utf8');
    const lines = truncated.split('\n');
    expect(await validate({ snapshot: 'truncated.json' })).toEqual([
      {
        key: 'snapshot',
        message: `${td('truncated.json')} is not valid JSON at line ${lines.length} column ${lines.at(-1)!.length + 1}: Unterminated string`,
      },
    ]);
    // A hand edit that lost the quotes: V8's own message has no position here.
    expect(await validate({ snapshot: 'hand-edited.json' })).toEqual([
      {
        key: 'snapshot',
        message: `${td('hand-edited.json')} is not valid JSON at line 160 column 18: Unexpected token 'R'`,
      },
    ]);
  });

  it('explains YAML, arrays, empty files and items that are no list', async () => {
    await writeFile(path.join(tmp, 'empty.json'), '\n');
    const problems = async (file: string, dir = TESTDATA) =>
      ((await validate({ snapshot: file }, dir)) ?? []).map((i) => i.message);
    expect(await problems('cluster.yaml')).toEqual([
      `${td('cluster.yaml')} is not JSON (it looks like YAML): write it with kubectl get pods,nodes,services,endpointslices -A -o json`,
    ]);
    expect(await problems('not-kubernetes.json')).toEqual([
      `${td('not-kubernetes.json')} is not a Kubernetes object or list: expected an object with "kind" (List, PodList, …, or Pod, Node, Service, EndpointSlice), found an array (write it with kubectl get pods,nodes,services,endpointslices -A -o json)`,
    ]);
    expect(await problems('items-not-array.json')).toEqual([
      `${td('items-not-array.json')} has "items" that is not an array (List)`,
    ]);
    expect(await problems('empty.json', tmp)).toEqual([
      `${path.join(tmp, 'empty.json')} is empty: expected the JSON of a Kubernetes List or object (write it with kubectl get pods,nodes,services,endpointslices -A -o json)`,
    ]);
  });

  it.skipIf(process.getuid?.() === 0)('reports a file it may not read', async () => {
    const file = path.join(tmp, 'secret.json');
    await writeFile(file, '{"kind":"List","items":[]}');
    await chmod(file, 0o000);
    expect(await validate({ snapshot: file })).toEqual([
      { key: 'snapshot', message: `${file} is not readable` },
    ]);
  });

  it('scope node needs a node name with a snapshot: the host name is not guessed', async () => {
    const saved = process.env.NODE_NAME;
    try {
      delete process.env.NODE_NAME;
      expect(await validate({ snapshot: 'nodes.json', scope: 'node' })).toEqual([
        {
          key: 'scope',
          message:
            'scope: node with a snapshot needs node_name (or NODE_NAME): it names the node whose pods are kept; the host name is not guessed',
        },
      ]);
      expect(await validate({ snapshot: 'nodes.json', scope: 'node', node_name: NODE_A })).toEqual([]);
      process.env.NODE_NAME = NODE_B;
      expect(await validate({ snapshot: 'nodes.json', scope: 'node' })).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.NODE_NAME;
      else process.env.NODE_NAME = saved;
    }
  });
});

describe('reading a file', () => {
  it('sorts a List by kind, keeps file order, and counts the kinds it does not read', async () => {
    const doc = await readSnapshotFile(td('get-all-web.json'));
    expect(doc.items.map((i) => `${i.kind} ${i.object.metadata.name} ${i.at}`)).toEqual([
      'Pod api-6b8d9f7c5-abcde items[0]',
      'Pod api-6b8d9f7c5-fghij items[1]',
      'Pod db-0 items[2]',
      'Service api items[3]',
      'Service db items[4]',
    ]);
    expect([...doc.skipped]).toEqual([
      ['Deployment', 1],
      ['StatefulSet', 1],
      ['ReplicaSet', 1],
    ]);
  });

  it('takes the kind of a typed list (PodList) for its items, which carry none', async () => {
    const doc = await readSnapshotFile(td('podlist-batch.json'));
    expect(doc.items.map((i) => [i.kind, i.object.metadata.name, i.object.kind])).toEqual([
      ['Pod', 'report-29453760-k2j4x', undefined],
      ['Pod', 'report-29453700-p9q8r', undefined],
    ]);
  });

  it('reads one object, and a UTF-8 or UTF-16LE file with a byte-order mark (PowerShell redirection)', async () => {
    const single = await readSnapshotFile(td('pod-debug.json'));
    expect(single.items.map((i) => [i.kind, i.object.metadata.name, i.at])).toEqual([
      ['Pod', 'debug', 'the file'],
    ]);
    const text = await readFile(td('pod-debug.json'), 'utf8');
    await writeFile(path.join(tmp, 'utf8-bom.json'), `\ufeff${text}`);
    await writeFile(
      path.join(tmp, 'utf16.json'),
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]),
    );
    for (const name of ['utf8-bom.json', 'utf16.json']) {
      const doc = await readSnapshotFile(path.join(tmp, name));
      expect(doc.items.map((i) => i.object.metadata.name)).toEqual(['debug']);
    }
  });

  it('tells a Service of another API group (Knative) and items without a kind from ours', async () => {
    const doc = await readSnapshotFile(td('invalid-items.json'));
    expect([...doc.skipped]).toEqual([
      ['Service (serving.knative.dev/v1)', 1],
      ['Endpoints', 2],
    ]);
    expect(doc.noKind).toEqual(['items[6]', 'items[7]']);
    expect(doc.items.map((i) => `${i.kind} ${i.at}`)).toEqual([
      'Pod items[0]',
      'Node items[1]',
      'EndpointSlice items[2]',
      'Pod items[8]',
    ]);
  });

  it('finds the first JSON error where JSON.parse would', () => {
    const cases = [
      '{"a": x}',
      '{"a": 1,}',
      '[1, 2',
      '{"a" 1}',
      '"\\q"',
      '01',
      '[1] 2',
      '{"a": tru}',
      '"\\u12G4"',
      '',
    ];
    for (const text of cases) {
      const at = firstJsonError(text);
      expect(at, text).toBeGreaterThanOrEqual(0);
      // The valid prefix before the error parses as far as it goes: the text up to there is no complete JSON
      // error of its own, and V8 agrees wherever it names a position.
      const v8 = (() => {
        try {
          JSON.parse(text);
        } catch (err) {
          return / at position (\d+)/.exec((err as Error).message)?.[1];
        }
      })();
      if (v8 !== undefined) expect(at, text).toBe(Number(v8));
    }
    expect(firstJsonError('{"a": [1, 2.5e3, "x\\n", true, false, null, {}]}')).toBe(-1);
    expect(firstJsonError('{"a": x}')).toBe(6);
    expect(firstJsonError('01')).toBe(1);
  });
});

describe('the store from a snapshot', () => {
  it('merges several files, resolves flows as the informers would, and says what it read', async () => {
    const { ext, logs, details, metric } = make({ snapshot: ALL, node_name: NODE_A });
    ext.requestPodLabels(['version']);
    expect(ext.synced()).toBe(false);
    await ext.start();
    expect(ext.synced()).toBe(true);
    expect(ext.standalone).toBe(false);
    expect(ext.provider()).toBe('aws');
    expect(ext.store.sizes()).toEqual({ pods: 7, nodes: 2, services: 3, endpointSlices: 4, addresses: 15 });

    const files = ALL.map(td);
    const summary = logs.find((l) => l.msg.startsWith('snapshot: 7 pods'));
    expect(summary).toMatchObject({
      level: 30,
      msg: `snapshot: 7 pods, 2 nodes, 3 services, 4 endpointslices from ${files.join(', ')}`,
      files,
      scope: 'cluster',
      node_name: NODE_A,
    });
    const skipped = logs.filter((l) => l.msg.startsWith('snapshot: skipped'));
    expect(skipped).toEqual([
      expect.objectContaining({
        level: 40,
        kinds: { Deployment: 1, StatefulSet: 1, ReplicaSet: 1 },
        msg: 'snapshot: skipped 3 items of kinds the metadata store is not built from (Deployment, StatefulSet, ReplicaSet); it reads Pod, Node, Service and EndpointSlice',
      }),
    ]);
    expect(details()).toEqual({
      mode: 'cluster',
      state: 'synced',
      node_name: NODE_A,
      snapshot: {
        files,
        // get-all-web.json repeats three pods and two services: each copy is applied, the later one wins.
        loaded: { pods: 10, nodes: 2, services: 5, endpointslices: 4 },
        skipped_kinds: { Deployment: 1, StatefulSet: 1, ReplicaSet: 1 },
        invalid: { pods: 0, nodes: 0, services: 0, endpointslices: 0, no_kind: 0 },
        pods_of_other_nodes: 0,
        ms: expect.any(Number),
      },
      informers: {},
      sizes: { pods: 7, nodes: 2, services: 3, endpointSlices: 4, addresses: 15 },
      warnings: [],
    });
    expect(await metric('netmon_k8s_metadata_synced')).toEqual(
      ['pods', 'nodes', 'services', 'endpointslices'].map((resource) => ({
        attributes: { resource },
        value: 1,
      })),
    );
    expect(await metric('netmon_k8s_metadata_events')).toEqual([
      { attributes: { resource: 'nodes', type: 'add' }, value: 2 },
      { attributes: { resource: 'pods', type: 'add' }, value: 10 },
      { attributes: { resource: 'services', type: 'add' }, value: 5 },
      { attributes: { resource: 'endpointslices', type: 'add' }, value: 4 },
    ]);

    const batch = FlowBatch.from([
      // 0: pod to pod across zones (Deployment via its ReplicaSet → StatefulSet); the slice names db.
      flow('10.244.0.11', '10.244.1.13', 5432),
      // 1: to a ClusterIP, DNAT'ed to a pod on the other node.
      flow('10.244.1.12', '172.20.10.10', 80, { backendIp: '10.244.0.11', backendPort: 8080 }),
      // 2: the same over IPv6, pod to pod: the IPv6 slice names the service.
      flow('fd00:10:244:1::c', 'fd00:10:244::b', 8080, { family: 6 }),
      // 3: a CronJob's pod (from the raw PodList) to the API server through the kubernetes Service.
      flow('10.244.0.20', '172.20.0.1', 443, { backendIp: '10.1.100.5', backendPort: 443 }),
      // 4: a finished pod owns no IP (placed by node A's podCIDR) to node A, whose IP hostNetwork kube-proxy shares.
      flow('10.244.0.21', '10.1.1.20', 10250),
      // 5: the bare pod of the single-object file to the internet.
      flow('10.244.1.40', '1.1.1.1', 53, { protocol: 17 }),
    ]);
    const r = ext.resolve(batch);
    const row = (i: number) => ({
      src: describeEntity(ext, r.src[i]),
      dst: describeEntity(ext, r.dst[i]),
      peer: describeEntity(ext, r.peer[i]),
      service: r.service[i] < 0 ? null : ext.store.entity(r.service[i])?.service,
    });
    const zoneA = { zone: 'eu-west-1a', region: 'eu-west-1' };
    const zoneB = { zone: 'eu-west-1b', region: 'eu-west-1' };
    const apiA = {
      kind: 'pod',
      namespace: 'web',
      pod: 'api-6b8d9f7c5-abcde',
      workload: 'Deployment/api',
      node: NODE_A,
      ...zoneA,
    };
    const db0 = {
      kind: 'pod',
      namespace: 'web',
      pod: 'db-0',
      workload: 'StatefulSet/db',
      node: NODE_B,
      ...zoneB,
    };
    const apiB = { ...apiA, pod: 'api-6b8d9f7c5-fghij', node: NODE_B, ...zoneB };
    expect(row(0)).toMatchObject({ src: apiA, dst: db0, peer: db0, service: 'db' });
    expect(row(1)).toMatchObject({
      src: apiB,
      dst: { kind: 'service', namespace: 'web', service: 'api', controlPlane: false },
      peer: apiA,
      service: 'api',
    });
    expect(row(2)).toMatchObject({ src: apiB, dst: apiA, service: 'api' });
    expect(row(3)).toMatchObject({
      src: {
        kind: 'pod',
        namespace: 'batch',
        pod: 'report-29453760-k2j4x',
        workload: 'CronJob/report',
        ...zoneA,
      },
      dst: { kind: 'service', service: 'kubernetes', controlPlane: true },
      peer: { kind: 'endpoint', service: 'kubernetes', controlPlane: true },
      service: 'kubernetes',
    });
    expect(row(4)).toMatchObject({
      src: { kind: 'pod', pod: undefined, node: NODE_A, ...zoneA },
      dst: { kind: 'node', pod: undefined, node: NODE_A, ...zoneA },
      service: null,
    });
    expect(row(5)).toMatchObject({
      src: { kind: 'pod', namespace: 'web', pod: 'debug', workload: 'Pod/debug', node: NODE_B, ...zoneB },
      dst: null,
    });
    // The later file's copy won: get-all-web.json relabelled api-…-fghij.
    expect(ext.store.entity(r.src[1])?.labels).toEqual({ version: 'v2' });
    expect(ext.store.entity(r.src[0])?.labels).toEqual({ version: 'v1' });
    await ext.shutdown();
  });

  it('skips and counts items it cannot use, says where they are, and loads the rest', async () => {
    const { ext, logs, details } = make({
      snapshot: ['nodes.json', 'invalid-items.json'],
      node_name: NODE_A,
    });
    await ext.start();
    expect(ext.store.sizes()).toMatchObject({ pods: 1, nodes: 2, services: 0, endpointSlices: 0 });
    const file = td('invalid-items.json');
    expect(logs.filter((l) => l.msg.startsWith('snapshot: skipped'))).toEqual([
      expect.objectContaining({
        level: 40,
        kinds: { 'Service (serving.knative.dev/v1)': 1, Endpoints: 2 },
        msg: 'snapshot: skipped 3 items of kinds the metadata store is not built from (Service (serving.knative.dev/v1), Endpoints); it reads Pod, Node, Service and EndpointSlice',
      }),
      expect.objectContaining({
        level: 40,
        invalid: { pods: 1, nodes: 1, services: 0, endpointslices: 1, no_kind: 2 },
        first: [
          `${file} items[0] (Pod web/no-uid)`,
          `${file} items[1] (Node)`,
          `${file} items[2] (EndpointSlice web/orphan-slice)`,
          `${file} items[6] (no kind)`,
          `${file} items[7] (no kind)`,
        ],
        msg: 'snapshot: skipped 5 items missing fields (1 pods: need metadata.uid, name and namespace; 1 nodes: need metadata.name; 1 endpointslices: need metadata.name, namespace and the label kubernetes.io/service-name; 2 no_kind: need kind)',
      }),
    ]);
    const warning =
      'snapshot has no Service (no ClusterIPs), no EndpointSlice (no Service of a backend, no API-server endpoints): write it with kubectl get pods,nodes,services,endpointslices -A -o json (kubectl get all leaves out nodes and endpointslices)';
    expect(logs.some((l) => l.level === 40 && l.msg === warning)).toBe(true);
    expect(details()).toMatchObject({
      state: 'synced',
      snapshot: {
        invalid: { pods: 1, nodes: 1, endpointslices: 1, no_kind: 2 },
        loaded: { pods: 1, nodes: 2 },
      },
      warnings: [warning],
    });
    const r = ext.resolve(FlowBatch.from([flow('10.244.0.50', '10.244.1.13', 5432)]));
    expect(describeEntity(ext, r.src[0])).toMatchObject({
      pod: 'good',
      workload: 'Pod/good',
      zone: 'eu-west-1a',
    });
    // db-0 is not in these files: its address is only somewhere in node B's pod CIDR.
    expect(describeEntity(ext, r.dst[0])).toMatchObject({ kind: 'pod', pod: undefined, node: NODE_B });
    await ext.shutdown();
  });

  it('without node_name or NODE_NAME, no node is this node, and the log says so; the host name is not used', async () => {
    const { ext, logs, details } = make({ snapshot: ALL });
    expect(ext.nodeName).toBeUndefined();
    await ext.start();
    expect(logs.filter((l) => l.msg.includes('no node is this node'))).toEqual([
      expect.objectContaining({
        level: 30,
        msg: 'snapshot: node_name is unset and NODE_NAME is empty, so no node is this node (k8s_attributes sets no flow.reporter, and classify exactly_once keeps every flow); set node_name to analyse as one node',
      }),
    ]);
    expect(details()).toMatchObject({ node_name: null, warnings: [] });
    await ext.shutdown();

    const fromEnv = make({ snapshot: ALL }, { env: { NODE_NAME: NODE_B } });
    expect(fromEnv.ext.nodeName).toBe(NODE_B);
  });

  it('warns when node_name is none of the snapshot nodes', async () => {
    const { ext, logs, details } = make({ snapshot: ALL, node_name: 'laptop' });
    await ext.start();
    const warning =
      "node_name laptop is not among the snapshot's nodes: no flow is this node's (flow.reporter stays unset, classify exactly_once keeps every flow)";
    expect(details()).toMatchObject({ warnings: [warning] });
    expect(logs.filter((l) => l.msg === warning).map((l) => l.level)).toEqual([40]);
    await ext.shutdown();
  });

  it('scope node keeps only the pods of node_name, as the field selector would; others are placed by podCIDR', async () => {
    const { ext, logs, details } = make({ snapshot: ALL, scope: 'node', node_name: NODE_B });
    await ext.start();
    expect(ext.mode).toBe('node');
    expect(ext.store.sizes().pods).toBe(3); // api-…-fghij, db-0, debug
    expect(details()).toMatchObject({
      snapshot: { pods_of_other_nodes: 5, loaded: { pods: 5 } },
      warnings: [],
    });
    expect(logs.find((l) => l.msg.startsWith('snapshot: 3 pods'))).toMatchObject({ pods_of_other_nodes: 5 });
    const r = ext.resolve(FlowBatch.from([flow('10.244.0.11', '10.244.1.13', 5432)]));
    expect(describeEntity(ext, r.src[0])).toMatchObject({ kind: 'pod', pod: undefined, node: NODE_A });
    expect(describeEntity(ext, r.dst[0])).toMatchObject({ pod: 'db-0' });
    await ext.shutdown();

    const nameless = make({ snapshot: ALL, scope: 'node' });
    await expect(nameless.ext.start()).rejects.toThrow(
      'scope: node with a snapshot needs node_name (or NODE_NAME): it names the node whose pods are kept',
    );
  });

  it('fails the start with the path when a file went missing or broke after validation', async () => {
    const file = path.join(tmp, 'changing.json');
    await writeFile(file, await readFile(td('nodes.json')));
    const { ext, details } = make({ snapshot: [td('workloads.json'), file] });
    await writeFile(file, '{"apiVersion": "v1", "kind": "List", "items": [');
    await expect(ext.start()).rejects.toThrow(
      `snapshot ${file} is not valid JSON at line 1 column 48: Unexpected end of JSON input`,
    );
    expect(ext.synced()).toBe(false);
    expect(details()).toMatchObject({
      state: 'syncing',
      snapshot: {
        error: `snapshot ${file} is not valid JSON at line 1 column 48: Unexpected end of JSON input`,
      },
    });
    await ext.shutdown();

    const gone = make({ snapshot: 'gone.json' }, { configDir: tmp });
    await expect(gone.ext.start()).rejects.toThrow(`snapshot ${path.join(tmp, 'gone.json')} does not exist`);
  });

  it('warns about a snapshot that holds no pods or nodes (an empty kubectl get)', async () => {
    const { ext, details } = make({ snapshot: 'empty-list.json' });
    await ext.start();
    expect(ext.synced()).toBe(true);
    expect(details()).toMatchObject({
      state: 'synced',
      warnings: [
        'snapshot has no Pod (no workloads), no Node (no zones, regions, cloud provider or node addresses), no Service (no ClusterIPs), no EndpointSlice (no Service of a backend, no API-server endpoints): write it with kubectl get pods,nodes,services,endpointslices -A -o json (kubectl get all leaves out nodes and endpointslices)',
      ],
    });
    await ext.shutdown();
  });
});
