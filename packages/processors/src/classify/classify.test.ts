import { FlowBatch, FlowFlags, type FlowInit } from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { K8S_METADATA } from '../k8s_metadata/metadata.js';
import type { MetadataStore } from '../k8s_metadata/store.js';
import { TRAFFIC_CLASSES } from './classes.js';
import { type ClassifyProcessor, DNS_CACHE, type DnsCache } from './classify.js';
import { classifyConfig } from './config.js';
import { classifyProcessorFactory } from './factory.js';
import { awsStore, flow, IP, staticMetadata } from './testdata/cluster.js';

async function classifier(
  config: unknown = {},
  opts: { store?: MetadataStore; node?: string; dns?: DnsCache } = {},
): Promise<ClassifyProcessor> {
  const extensions = new Map<string, never>([
    [K8S_METADATA, staticMetadata(opts.store ?? awsStore(), opts.node ?? 'node-a') as never],
  ]);
  if (opts.dns) extensions.set(DNS_CACHE, opts.dns as never);
  const settings = testSettings('processor', 'classify', { extensions });
  return (await classifyProcessorFactory.create(
    settings,
    classifyConfig.parse(config),
    'flows',
  )) as ClassifyProcessor;
}

async function classify(flows: FlowInit[], config: unknown = {}, opts = {}) {
  const p = await classifier(config, opts);
  const out = await p.process(FlowBatch.from(flows));
  return out === null || out === undefined
    ? []
    : [...out].map((r) => ({ class: r.get('traffic.class'), kind: r.get('dst.kind') }));
}

describe('classify: the traffic class of each flow, seen from node-a (AWS, us-east-1a)', () => {
  it.each([
    ['same_node', IP.web, IP.cache, {}, 'pod'],
    ['same_zone', IP.web, IP.worker, {}, 'pod'],
    // Dialled the db Service; kube-proxy sent it to db-0 on node-b in us-east-1b.
    ['cross_zone', IP.web, IP.dbService, { backendIp: IP.db, backendPort: 5432 }, 'service'],
    ['cross_region', IP.web, IP.api, {}, 'pod'],
    ['internet_egress', IP.web, IP.internet, {}, 'external_public'],
    ['cloud_api', IP.web, IP.imds, {}, 'external_private'],
    ['k8s_control_plane', IP.web, IP.kubernetes, { backendIp: IP.apiServer, backendPort: 443 }, 'service'],
    ['k8s_control_plane', IP.nodeA, IP.apiServer, {}, 'endpoint'],
    ['load_balancer', IP.web, IP.lb, {}, 'service'],
    ['external_private', IP.web, IP.corp, {}, 'external_private'],
    ['same_zone', IP.nodeA, IP.nodeA2, {}, 'node'],
  ] as const)('%s: %s → %s', async (expected, src, dst, extra, kind) => {
    expect(await classify([flow(src, dst, extra)])).toEqual([{ class: expected, kind }]);
  });

  it('internet_ingress: a client on the internet opened the connection to a pod here', async () => {
    expect(await classify([flow(IP.client, IP.web)])).toEqual([{ class: 'internet_ingress', kind: 'pod' }]);
  });

  it('an IPv6 flow to a pod in another zone is cross_zone', async () => {
    const store = awsStore();
    store.upsertPod({
      uid: 'u-v6',
      name: 'v6',
      namespace: 'shop',
      nodeName: 'node-a',
      phase: 'Running',
      hostNetwork: false,
      ips: ['fd00:1:1::5'],
      workloadKind: 'Pod',
      workloadName: 'v6',
      labels: {},
    });
    expect(await classify([flow('fd00:1:1::5', IP.dbV6, { family: 6 })], {}, { store })).toEqual([
      { class: 'cross_zone', kind: 'pod' },
    ]);
  });

  it('a pod known only by its node’s pod CIDR (scope node) is placed in that node’s zone', async () => {
    expect(await classify([flow(IP.web, IP.unwatched)])).toEqual([{ class: 'cross_zone', kind: 'pod' }]);
  });

  it('recognises destinations by DNS name: dst.domain written upstream, or the dns_cache extension', async () => {
    const upstream = await classify([
      flow(IP.web, '10.30.0.8', {
        attributes: { 'dst.domain': 'vpce-0a1b-x.s3.us-east-1.vpce.amazonaws.com' },
      }),
      flow(IP.web, '52.216.1.1', { attributes: { 'dst.domain': 's3.us-east-1.amazonaws.com' } }),
      flow(IP.web, '52.94.1.1', { attributes: { 'dst.domain': 'ABCDEF.gr7.us-east-1.eks.amazonaws.com.' } }),
    ]);
    expect(upstream.map((r) => r.class)).toEqual(['private_link', 'cloud_api', 'k8s_control_plane']);
    const dns: DnsCache = {
      domainOf: (buf, off) => (buf[off + 15] === 9 ? 'internal-x.us-east-1.elb.amazonaws.com' : undefined),
    };
    const p = await classifier({}, { dns });
    const out = (await p.process(
      FlowBatch.from([flow(IP.web, '34.1.2.9'), flow(IP.web, '34.1.2.8')]),
    )) as FlowBatch;
    expect([...out].map((r) => [r.get('traffic.class'), r.get('dst.domain')])).toEqual([
      ['load_balancer', 'internal-x.us-east-1.elb.amazonaws.com'],
      ['internet_egress', undefined],
    ]);
  });

  it('user rules come first: a direct class, or a place that the class then follows from', async () => {
    const config = {
      rules: [
        { name: 'rds', cidrs: ['10.50.0.0/16'], zone: 'us-east-1b', region: 'us-east-1' },
        { name: 'peering', cidrs: ['10.60.0.0/16'], class: 'private_link' },
        { name: 'partner', cidrs: ['10.60.7.0/24'], region: 'eu-west-1' },
        { name: 'metadata is free here', cidrs: [`${IP.imds}/32`], class: 'same_zone' },
      ],
    };
    const out = await classify(
      [
        flow(IP.web, '10.50.3.3'),
        flow(IP.web, '10.60.1.1'),
        flow(IP.web, '10.60.7.7'),
        flow(IP.web, IP.imds),
      ],
      config,
    );
    // The most specific CIDR wins: 10.60.7.7 is the partner's, in another region.
    expect(out.map((r) => r.class)).toEqual(['cross_zone', 'private_link', 'cross_region', 'same_zone']);
  });

  it('patterns are data: replacing the list changes what is recognised, [] turns it off', async () => {
    expect((await classify([flow(IP.web, IP.imds)], { patterns: [] }))[0].class).toBe('external_private');
    const custom = { patterns: [{ class: 'cloud_api', cidrs: ['192.168.50.0/24'] }] };
    expect((await classify([flow(IP.web, IP.corp)], custom))[0].class).toBe('cloud_api');
  });

  it('exactly once: a connection initiated on another node is left to that node, and counted', async () => {
    const p = await classifier();
    const batch = FlowBatch.from([
      flow(IP.db, IP.web), // db-0 on node-b dialled web: node-b reports it
      flow(IP.web, IP.db), // web dialled db-0: this node reports it
      flow(IP.client, IP.web), // from outside the cluster: the responder's node (this one) reports it
      flow(IP.nodeB, IP.nodeA), // node-b's own traffic: node-b reports it
    ]);
    const out = (await p.process(batch)) as FlowBatch;
    expect([...out].map((r) => [r.srcIp, r.dstIp])).toEqual([
      [IP.web, IP.db],
      [IP.client, IP.web],
    ]);
    expect((p as unknown as { duplicates: number }).duplicates).toBe(2);
  });

  it('exactly once without a known initiator: of two nodes, the end with the lower address reports', async () => {
    const localRemote = { flags: FlowFlags.LocalRemote };
    const onA = await classifier({}, { node: 'node-a' });
    const onB = await classifier({}, { node: 'node-b' });
    const fromA = (await onA.process(FlowBatch.from([flow(IP.web, IP.db, localRemote)]))) as FlowBatch | null;
    const fromB = (await onB.process(FlowBatch.from([flow(IP.db, IP.web, localRemote)]))) as FlowBatch | null;
    // 10.1.1.5 < 10.1.2.7: node-a keeps it, node-b drops its copy.
    expect(fromA?.length).toBe(1);
    expect(fromB?.length ?? 0).toBe(0);
  });

  it('exactly once keeps every flow while this node is not among the cluster’s nodes (NODE_NAME unset)', async () => {
    expect(
      await classify([flow(IP.db, IP.web), flow(IP.web, IP.db)], {}, { node: 'web-pod-hostname' }),
    ).toHaveLength(2);
  });

  it('a rule’s region reaches the flow’s attributes, for the cost processor', async () => {
    const p = await classifier({
      rules: [{ cidrs: ['10.70.0.0/16'], region: 'eu-west-1', zone: 'eu-west-1a' }],
    });
    const out = (await p.process(FlowBatch.from([flow(IP.web, '10.70.1.1')]))) as FlowBatch;
    expect(out.attributes(0)).toMatchObject({
      'traffic.class': 'cross_region',
      'dst.cloud.region': 'eu-west-1',
      'dst.cloud.availability_zone': 'eu-west-1a',
    });
  });

  it('the API server reached at a node address (self-managed control plane) is k8s_control_plane', async () => {
    const store = awsStore();
    store.upsertEndpointSlice({
      namespace: 'default',
      name: 'kubernetes',
      service: 'kubernetes',
      ports: [6443],
      endpoints: [{ ips: [IP.nodeB] }],
    });
    expect(await classify([flow(IP.nodeA, IP.nodeB, { dstPort: 6443 })], {}, { store })).toEqual([
      { class: 'k8s_control_plane', kind: 'node' },
    ]);
  });

  it('exactly_once: false keeps every copy', async () => {
    expect(await classify([flow(IP.db, IP.web)], { exactly_once: false })).toHaveLength(1);
  });

  it('names the key of a bad config', () => {
    const r = classifyConfig.safeParse({ rules: [{ cidrs: ['10.0.0.0/33'], class: 'same_zone' }] });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/prefix length/);
    const r2 = classifyConfig.safeParse({ rules: [{ cidrs: ['10.0.0.0/8'] }] });
    expect(r2.error?.issues[0].message).toMatch(/sets `class`, or places/);
    expect(classifyConfig.safeParse({ rules: [], colour: 1 }).success).toBe(false);
  });
});

describe('classify: properties', () => {
  /** Every address that is a pod or node of the cluster, with its node. */
  const onNode = new Map<string, string>([
    [IP.web, 'node-a'],
    [IP.cache, 'node-a'],
    [IP.nodeA, 'node-a'],
    [IP.worker, 'node-a2'],
    [IP.db, 'node-b'],
    [IP.unwatched, 'node-b'],
    [IP.nodeB, 'node-b'],
    [IP.api, 'node-eu'],
    [IP.nodeEu, 'node-eu'],
  ]);
  const local = [...onNode.keys()];
  const pool = [
    ...local,
    IP.dbService,
    IP.apiServer,
    IP.lb,
    IP.internet,
    IP.client,
    IP.imds,
    IP.corp,
    '10.77.0.1',
    '1.1.1.1',
  ];
  const mirror: Record<string, string> = {
    internet_egress: 'internet_ingress',
    internet_ingress: 'internet_egress',
  };
  const pair = fc.tuple(fc.constantFrom(...pool), fc.constantFrom(...pool));

  it('every flow gets exactly one class from the vocabulary, and a destination kind', async () => {
    const p = await classifier({ exactly_once: false });
    await fc.assert(
      fc.asyncProperty(fc.array(pair, { minLength: 1, maxLength: 50 }), async (pairs) => {
        const out = (await p.process(FlowBatch.from(pairs.map(([a, b]) => flow(a, b))))) as FlowBatch;
        expect(out.length).toBe(pairs.length);
        for (const r of out) {
          expect(TRAFFIC_CLASSES).toContain(r.get('traffic.class'));
          expect(r.get('dst.kind')).toBeTypeOf('string');
        }
      }),
    );
  });

  it('local/remote symmetry: swapping the ends of a flow with a cluster end mirrors only internet direction', async () => {
    const p = await classifier({ exactly_once: false });
    await fc.assert(
      fc.asyncProperty(pair, async ([a, b]) => {
        fc.pre(onNode.has(a) || onNode.has(b));
        const out = (await p.process(FlowBatch.from([flow(a, b), flow(b, a)]))) as FlowBatch;
        const there = out.getAttribute(0, 'traffic.class') as string;
        const back = out.getAttribute(1, 'traffic.class') as string;
        expect(back).toBe(mirror[there] ?? there);
      }),
    );
  });

  it('exactly once across two nodes: a connection between them is kept by exactly one', async () => {
    const store = awsStore();
    const nodes = ['node-a', 'node-a2', 'node-b', 'node-eu'];
    const procs = await Promise.all(nodes.map((node) => classifier({}, { store, node })));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...local),
        fc.constantFrom(...pool),
        fc.boolean(),
        async (a, b, known) => {
          // Each node whose end it is sees the connection; without a known initiator, its own end is src.
          const flags = known ? FlowFlags.InitiatorKnown : FlowFlags.LocalRemote;
          let kept = 0;
          for (const [i, node] of nodes.entries()) {
            const mine = onNode.get(a) === node || onNode.get(b) === node;
            if (!mine) continue;
            const f = known || onNode.get(a) === node ? flow(a, b, { flags }) : flow(b, a, { flags });
            const out = (await procs[i].process(FlowBatch.from([f]))) as FlowBatch | null;
            kept += out?.length ?? 0;
          }
          expect(kept).toBe(1);
        },
      ),
    );
  });
});

describeConformance(classifyProcessorFactory, {
  extensions: () => new Map([[K8S_METADATA, staticMetadata(awsStore()) as never]]),
});
