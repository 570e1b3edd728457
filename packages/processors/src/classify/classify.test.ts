import {
  DnsBatch,
  DnsType,
  FlowBatch,
  FlowFlags,
  type FlowInit,
  formatIp,
  parseIp,
  StatusBoard,
} from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import {
  createDnsCache,
  DNS_CACHE,
  type DnsCache,
  dnsCacheConfig,
  K8S_METADATA,
  MetadataStore,
} from '@netmon/extensions';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DESTINATION_KINDS, TRAFFIC_CLASSES } from './classes.js';
import { ClassifyProcessor } from './classify.js';
import { classifyConfig } from './config.js';
import { classifyProcessorFactory } from './factory.js';
import { HostAddresses } from './local.js';
import { awsStore, flow, IP, staticMetadata } from './testdata/cluster.js';
import { eth0 } from './testdata/interfaces.js';
import {
  drawFlow,
  flowSeeds,
  inPatternCidr,
  isPublic,
  ruleOf,
  type World,
  worlds,
} from './testdata/world.js';

class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

/** A meter whose self-metrics a test reads back, as an exporter would. */
function testMeter() {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    async value(name: string): Promise<number | undefined> {
      const { resourceMetrics } = await reader.collect();
      const metric = resourceMetrics.scopeMetrics
        .flatMap((m) => m.metrics)
        .find((m) => m.descriptor.name === name);
      return metric?.dataPoints[0]?.value as number | undefined;
    },
  };
}

/**
 * This host's interfaces as a test sets them: none by default, so the machine running the tests (whose
 * addresses could be any of the test's) never changes a class; loopback and node-a's record still count.
 */
function hostWith(...addresses: string[]): HostAddresses {
  return new HostAddresses({ interfaces: eth0(...addresses) });
}

async function classifier(
  config: unknown = {},
  opts: {
    store?: MetadataStore;
    node?: string;
    dns?: DnsCache;
    meter?: MeterProvider;
    host?: HostAddresses;
    standalone?: boolean;
    /** k8s_metadata reads a snapshot. */
    offline?: boolean;
    board?: StatusBoard;
  } = {},
): Promise<ClassifyProcessor> {
  const metadata = staticMetadata(opts.store ?? awsStore(), opts.node ?? 'node-a');
  const settings = testSettings('processor', 'classify', opts.board ? { board: opts.board } : {});
  if (opts.meter) settings.meter = opts.meter.getMeter('test');
  return new ClassifyProcessor(
    settings,
    classifyConfig.parse(config),
    { ...metadata, standalone: opts.standalone ?? false, offline: opts.offline ?? false },
    opts.dns,
    opts.host ?? hostWith(),
  );
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
    const elb = { name: 'internal-x.us-east-1.elb.amazonaws.com', canonical: '' };
    const dns: DnsCache = {
      learn: () => {},
      domainOf: (buf, off) => (buf[off + 15] === 9 ? elb : undefined),
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

  it('the factory hands over the k8s_metadata and dns_cache extensions', async () => {
    const dns: DnsCache = {
      learn: () => {},
      domainOf: () => ({ name: 'x.us-east-1.elb.amazonaws.com', canonical: '' }),
    };
    const extensions = new Map<string, never>([
      [K8S_METADATA, staticMetadata(awsStore()) as never],
      [DNS_CACHE, dns as never],
    ]);
    const p = await classifyProcessorFactory.create(
      testSettings('processor', 'classify', { extensions }),
      classifyConfig.parse({}),
      'flows',
    );
    const out = (await p.process(FlowBatch.from([flow(IP.web, '34.1.2.9')]))) as FlowBatch;
    expect(out.attributes(0)).toMatchObject({
      'traffic.class': 'load_balancer',
      'dst.domain': 'x.us-east-1.elb.amazonaws.com',
    });
  });

  it('names a destination as its source resolved it (dns_cache per client): two pods, one address, two names', async () => {
    const cache = createDnsCache(testSettings('extension', 'dns_cache'), dnsCacheConfig.parse({}));
    const t0 = Date.now();
    // One CDN address behind two names: web asked for the shop's, cache for an AWS load balancer's.
    cache.learn(
      DnsBatch.from([
        {
          time: t0,
          clientIp: IP.web,
          question: 'Shop.Example.com.',
          answers: [{ name: 'shop.example.com', type: DnsType.A, ttl: 30, ip: '34.1.2.9' }],
        },
        {
          time: t0,
          clientIp: IP.cache,
          question: 'internal-x.us-east-1.elb.amazonaws.com',
          answers: [
            { name: 'internal-x.us-east-1.elb.amazonaws.com', type: DnsType.A, ttl: 30, ip: '34.1.2.9' },
          ],
        },
      ]),
    );
    // Every copy kept: worker runs on node-a2, whose agent would report its flows.
    const p = await classifier({ exactly_once: false }, { dns: cache });
    const out = (await p.process(
      FlowBatch.from([flow(IP.web, '34.1.2.9'), flow(IP.cache, '34.1.2.9'), flow(IP.worker, '34.1.2.9')]),
    )) as FlowBatch;
    expect([...out].map((r) => [r.get('dst.domain'), r.get('traffic.class')])).toEqual([
      ['shop.example.com', 'internet_egress'],
      ['internal-x.us-east-1.elb.amazonaws.com', 'load_balancer'],
      // A pod the cache has no answer of its own for gets the name the address was first resolved to.
      ['shop.example.com', 'internet_egress'],
    ]);
    cache.shutdown();
  });

  it('matches DNS-name patterns on the canonical name too: a private endpoint behind a public service name', async () => {
    // sqs.us-east-1.amazonaws.com alone is cloud_api; its CNAME to an interface endpoint makes it private_link.
    const sqs = {
      name: 'sqs.us-east-1.amazonaws.com',
      canonical: 'vpce-0a1b2c-x7y8.sqs.us-east-1.vpce.amazonaws.com',
    };
    const s3 = { name: 's3.us-east-1.amazonaws.com', canonical: '' };
    const dns: DnsCache = {
      learn: () => {},
      domainOf: (buf, off) => (buf[off + 15] === 8 ? sqs : buf[off + 15] === 1 ? s3 : undefined),
    };
    const p = await classifier({}, { dns });
    const out = (await p.process(
      FlowBatch.from([
        flow(IP.web, '10.30.0.8'),
        flow(IP.web, '52.216.1.1'),
        // Written upstream: kept, and matched by itself (no canonical name is known for it).
        flow(IP.web, '10.30.0.8', { attributes: { 'dst.domain': 'sqs.us-east-1.amazonaws.com' } }),
      ]),
    )) as FlowBatch;
    expect([...out].map((r) => [r.get('dst.domain'), r.get('traffic.class')])).toEqual([
      ['sqs.us-east-1.amazonaws.com', 'private_link'],
      ['s3.us-east-1.amazonaws.com', 'cloud_api'],
      ['sqs.us-east-1.amazonaws.com', 'cloud_api'],
    ]);
  });

  it('asks the cache with the flow’s source as the client, and matches each distinct name once per batch', async () => {
    let reads = 0;
    const name = {
      get name() {
        reads++;
        return 'api.partner.example';
      },
      canonical: 'edge.cdn.example',
    };
    const asked: string[] = [];
    const dns: DnsCache = {
      learn: () => {},
      domainOf: (buf, off, client, clientOff = 0) => {
        asked.push(`${formatIp(buf, off)} from ${client ? formatIp(client, clientOff) : 'nobody'}`);
        return name;
      },
    };
    const p = await classifier({}, { dns });
    const flows = Array.from({ length: 200 }, (_, i) => flow(i % 2 ? IP.web : IP.cache, '34.1.2.9'));
    const out = (await p.process(FlowBatch.from(flows))) as FlowBatch;
    expect(asked.slice(0, 2)).toEqual([`34.1.2.9 from ${IP.cache}`, `34.1.2.9 from ${IP.web}`]);
    expect(asked).toHaveLength(200);
    expect(new Set([...out].map((r) => r.get('dst.domain')))).toEqual(new Set(['api.partner.example']));
    // One DnsName: its name read for the dictionary and the patterns, not once per row.
    expect(reads).toBeLessThanOrEqual(3);
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
    const meter = testMeter();
    const p = await classifier({}, { meter: meter.provider });
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
    expect(await meter.value('netmon_classify_duplicates_dropped')).toBe(2);
    await p.process(FlowBatch.from([flow(IP.db, IP.cache)]));
    expect(await meter.value('netmon_classify_duplicates_dropped')).toBe(3);
    await meter.provider.shutdown();
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

  it('the API server at a node address is the control plane in both directions, unless the other end is the internet', async () => {
    const store = awsStore();
    store.upsertEndpointSlice({
      namespace: 'default',
      name: 'kubernetes',
      service: 'kubernetes',
      ports: [6443],
      endpoints: [{ ips: [IP.nodeB] }],
    });
    const out = await classify(
      [
        flow(IP.web, IP.nodeB, { dstPort: 6443 }), // a pod calls the API server
        flow(IP.nodeB, IP.web, { dstPort: 8443 }), // the API server calls a webhook in that pod
        flow(IP.nodeB, IP.nodeA, { dstPort: 10250 }), // and a kubelet (exec, logs)
        flow(IP.web, IP.kubernetes, { backendIp: IP.nodeB, backendPort: 6443 }), // through the Service
        flow(IP.nodeB, IP.internet), // that node's own downloads stay internet egress
        flow(IP.client, IP.nodeB, { dstPort: 6443 }), // and a client on the internet is ingress
      ],
      { exactly_once: false },
      { store },
    );
    expect(out.map((r) => r.class)).toEqual([
      'k8s_control_plane',
      'k8s_control_plane',
      'k8s_control_plane',
      'k8s_control_plane',
      'internet_egress',
      'internet_ingress',
    ]);
  });

  it('a translated flow is classed by the backend it reached: its rules, patterns and publicness', async () => {
    const store = awsStore();
    // A selector-less Service in front of an address on the internet, and one in front of a database.
    store.upsertService({
      namespace: 'shop',
      name: 'ext',
      type: 'ClusterIP',
      clusterIps: ['172.20.0.30'],
      loadBalancerIps: [],
    });
    store.upsertEndpointSlice({
      namespace: 'shop',
      name: 'ext-1',
      service: 'ext',
      ports: [443, 5432],
      endpoints: [{ ips: ['52.1.2.3'] }, { ips: ['10.50.3.3'] }],
    });
    const config = {
      rules: [{ name: 'rds', cidrs: ['10.50.0.0/16'], zone: 'us-east-1b', region: 'us-east-1' }],
    };
    const out = await classify(
      [
        flow(IP.web, '172.20.0.30', { backendIp: '52.1.2.3', backendPort: 443 }),
        flow(IP.web, '172.20.0.30', { backendIp: '10.50.3.3', backendPort: 5432 }),
      ],
      config,
      { store },
    );
    expect(out).toEqual([
      { class: 'internet_egress', kind: 'service' },
      { class: 'cross_zone', kind: 'service' },
    ]);
  });

  describe('same_node: traffic that never leaves this host', () => {
    const kinds = async (flows: FlowInit[], opts = {}) =>
      (await classify(flows, {}, opts)).map((r) => `${r.class}/${r.kind}`);

    it('loopback is same_node, IPv4, IPv6 and IPv4-mapped, with the node as its destination kind', async () => {
      expect(
        await kinds([
          flow('127.0.0.1', '127.0.0.1', { dstPort: 6379 }),
          flow('127.0.0.1', '127.0.0.53', { dstPort: 53, protocol: 17 }), // systemd-resolved
          flow('::1', '::1', { family: 6 }),
          flow('::ffff:127.0.0.1', '::ffff:127.0.0.1', { family: 6 }), // an IPv6 socket reaching 127.0.0.1
        ]),
      ).toEqual(['same_node/node', 'same_node/node', 'same_node/node', 'same_node/node']);
      // before: loopback counted as a private network outside the cluster
      expect(await kinds([flow('127.0.0.1', '127.0.0.1')])).not.toContain(
        'external_private/external_private',
      );
    });

    it('between two addresses of this host — an interface’s and the node record’s — whatever else they are', async () => {
      // eth0 192.168.1.10, docker0 172.17.0.1, and a global IPv6 address; node-a's record says 10.0.1.10.
      const host = hostWith('192.168.1.10', '172.17.0.1', '2001:db8::10');
      expect(
        await kinds(
          [
            flow('192.168.1.10', '172.17.0.1', { dstPort: 2375 }),
            flow('172.17.0.1', IP.nodeA, { dstPort: 10250 }),
            flow('2001:db8::10', '::1', { family: 6 }),
            // one end only is this host's: classed as before
            flow('192.168.1.10', IP.corp, { dstPort: 22 }),
            flow('192.168.1.10', IP.internet),
          ],
          { host },
        ),
      ).toEqual([
        'same_node/node',
        'same_node/node',
        'same_node/node',
        'external_private/external_private',
        'internet_egress/external_public',
      ]);
    });

    it('a rule or pattern cannot make it leave the host', async () => {
      const host = hostWith('192.168.1.10', '169.254.169.254');
      const config = { rules: [{ cidrs: ['192.168.0.0/16'], class: 'external_private' }] };
      expect(
        (
          await classify([flow('192.168.1.10', '169.254.169.254'), flow('192.168.1.10', IP.corp)], config, {
            host,
          })
        ).map((r) => r.class),
      ).toEqual(['same_node', 'external_private']);
    });

    it('standalone: works from the interfaces alone', async () => {
      const host = hostWith('10.20.0.5', '192.168.122.1');
      const out = await classify(
        [flow('10.20.0.5', '192.168.122.1'), flow('127.0.0.1', '127.0.0.1'), flow('10.20.0.5', IP.internet)],
        {},
        { host, store: new MetadataStore(), node: 'laptop', standalone: true },
      );
      expect(out).toEqual([
        { class: 'same_node', kind: 'node' },
        { class: 'same_node', kind: 'node' },
        { class: 'internet_egress', kind: 'external_public' },
      ]);
    });

    it('this host’s own public address is our side: a client reaching it is internet_ingress, not egress', async () => {
      const host = hostWith('203.0.113.7');
      const out = await classify(
        [flow(IP.client, '203.0.113.7'), flow('203.0.113.7', IP.internet)],
        {},
        { host, store: new MetadataStore(), node: 'vm', standalone: true },
      );
      expect(out).toEqual([
        { class: 'internet_ingress', kind: 'node' },
        { class: 'internet_egress', kind: 'external_public' },
      ]);
    });

    it('an address of this host that the store does not know is placed on this node, in its zone', async () => {
      // A secondary address of node-a (us-east-1a) reaching db-0 on node-b (us-east-1b): cross_zone, kept
      // by this node (its initiator is here); without the interface it is a private host outside the cluster.
      const secondary = '10.0.1.99';
      expect(await classify([flow(secondary, IP.db)], {}, { host: hostWith(secondary) })).toEqual([
        { class: 'cross_zone', kind: 'pod' },
      ]);
      expect(await classify([flow(secondary, IP.db)])).toEqual([{ class: 'external_private', kind: 'pod' }]);
    });
  });

  describe('whose interfaces: flows analysed away from the node that recorded them', () => {
    // The analysing machine's eth0 is 192.0.2.2; the flows name it as a public destination, like 192.0.2.9.
    const flows = () => [
      flow(IP.web, '192.0.2.2'),
      flow(IP.web, '192.0.2.9'),
      flow('127.0.0.1', '127.0.0.1'),
      // node-a's record (node_name) still counts: loopback to it never leaves the node
      flow('127.0.0.1', IP.nodeA, { dstPort: 10250 }),
    ];
    const run = async (config: unknown, opts: { offline: boolean }) => {
      const board = new StatusBoard();
      const p = await classifier(config, { ...opts, host: hostWith('192.0.2.2'), board });
      const out = (await p.process(FlowBatch.from(flows()))) as FlowBatch;
      return {
        rows: [...out].map((r) => `${r.get('traffic.class')}/${r.get('dst.kind')}`),
        status: board.all()[0].details?.() as Record<string, unknown>,
      };
    };

    it('with a snapshot (auto) this machine’s interfaces are not this node’s: 192.0.2.2 is the internet too', async () => {
      const { rows, status } = await run({}, { offline: true });
      expect(rows).toEqual([
        'internet_egress/external_public',
        'internet_egress/external_public',
        'same_node/node',
        'same_node/node',
      ]);
      expect(status).toMatchObject({ host_addresses: [IP.nodeA], host_addresses_count: 1 });
      expect(status.host_interfaces).toMatch(/^not read \(auto: k8s_metadata reads a snapshot/);
    });

    it('watching a live cluster (auto) they are: web on node-a reaching this host is same_node', async () => {
      const { rows, status } = await run({}, { offline: false });
      expect(rows).toEqual([
        'same_node/node',
        'internet_egress/external_public',
        'same_node/node',
        'same_node/node',
      ]);
      expect(status).toMatchObject({ host_addresses: [IP.nodeA, '192.0.2.2'], host_addresses_count: 2 });
    });

    it('host_interfaces overrides auto both ways', async () => {
      // a snapshot analysed on the machine that recorded the flows
      expect((await run({ host_interfaces: true }, { offline: true })).rows[0]).toBe('same_node/node');
      // a replay of recorded flows without a snapshot (file receiver, standalone)
      const off = await run({ host_interfaces: false }, { offline: false });
      expect(off.rows[0]).toBe('internet_egress/external_public');
      expect(off.status.host_interfaces).toBe('not read (processors::classify::host_interfaces: false)');
    });

    it('host_interfaces is auto, true or false', () => {
      expect(classifyConfig.parse({}).host_interfaces).toBe('auto');
      expect(classifyConfig.parse({ host_interfaces: false }).host_interfaces).toBe(false);
      const bad = classifyConfig.safeParse({ host_interfaces: 'no' });
      expect(bad.error?.issues[0]).toMatchObject({
        path: ['host_interfaces'],
        message: '"no" is not a choice; expected auto, true or false',
      });
    });
  });

  describe('dst.kind node: an end on this host is in the cluster, even where this node’s zone is unknown', () => {
    // 10.0.9.9 is a secondary address of this host that no node record lists.
    const host = () => hostWith('10.0.9.9');

    it('node_name not among the nodes: a pod reaching this host is same_zone (unlocated), not external_private', async () => {
      const meter = testMeter();
      const p = await classifier({}, { host: host(), node: 'ghost', meter: meter.provider });
      const out = (await p.process(
        FlowBatch.from([
          flow(IP.db, '10.0.9.9'),
          // from outside the cluster: the class says so, and the destination is still this node
          flow(IP.corp, '10.0.9.9'),
          flow(IP.client, '10.0.9.9'),
        ]),
      )) as FlowBatch;
      expect([...out].map((r) => `${r.get('traffic.class')}/${r.get('dst.kind')}`)).toEqual([
        'same_zone/node',
        'external_private/node',
        'internet_ingress/node',
      ]);
      expect(await meter.value('netmon_classify_unlocated')).toBe(1);
    });

    it('standalone: this host and a place a rule names are same_zone for want of the host’s zone, unless a rule places it', async () => {
      const rds = { cidrs: ['10.50.0.0/16'], zone: 'us-east-1b', region: 'us-east-1' };
      const opts = { host: hostWith('10.20.0.5'), store: new MetadataStore(), node: 'vm', standalone: true };
      const to = [flow('10.20.0.5', '10.50.1.1', { dstPort: 5432 })];
      expect(await classify(to, { rules: [rds] }, opts)).toEqual([
        { class: 'same_zone', kind: 'external_private' },
      ]);
      const placed = { rules: [rds, { cidrs: ['10.20.0.5/32'], zone: 'us-east-1a', region: 'us-east-1' }] };
      expect(await classify(to, placed, opts)).toEqual([{ class: 'cross_zone', kind: 'external_private' }]);
    });

    it('this node without topology labels: its own pod is same_node, another node’s pod same_zone', async () => {
      const store = awsStore();
      store.upsertNode({ name: 'node-a', provider: 'aws', ips: [IP.nodeA], podCidrs: ['10.1.1.0/24'] });
      expect(
        // every copy kept: db-0's node would report its own connection
        (
          await classify(
            [flow(IP.web, '10.0.9.9'), flow(IP.db, '10.0.9.9')],
            { exactly_once: false },
            {
              host: host(),
              store,
            },
          )
        ).map((r) => `${r.class}/${r.kind}`),
      ).toEqual(['same_node/node', 'same_zone/node']);
    });
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

describe('classify: properties over generated clusters', () => {
  const mirror: Record<string, string> = {
    internet_egress: 'internet_ingress',
    internet_ingress: 'internet_egress',
  };
  const configOf = (w: World, exactlyOnce: boolean) => ({
    rules: w.rules,
    ...(w.patterns === undefined ? {} : { patterns: w.patterns }),
    exactly_once: exactlyOnce,
  });
  const classes = (out: FlowBatch | null | undefined) =>
    out === null || out === undefined ? [] : [...out].map((r) => r.get('traffic.class') as string);
  const flowsOf = fc.array(flowSeeds, { minLength: 1, maxLength: 30 });
  const at = (ip: string) => {
    const buf = new Uint8Array(16);
    parseIp(ip, buf, 0);
    return buf;
  };
  /** Placed (step 3 of the README): a cluster member, or an address a rule gives a zone or region. */
  const placed = (w: World, store: MetadataStore, ip: string) => {
    const owner = store.lookup(at(ip), 0);
    const rule = ruleOf(w, ip)?.rule;
    return (
      (owner !== null && owner.kind !== 'endpoint') || rule?.zone !== undefined || rule?.region !== undefined
    );
  };

  it('every flow gets exactly one class from the documented set and a destination kind; exactly once only drops, and counts each drop', async () => {
    await fc.assert(
      fc.asyncProperty(worlds, flowsOf, async (w, seeds) => {
        const flows = seeds.map((f) => drawFlow(w, f).init);
        const store = w.store(w.me);
        const all = await (await classifier(configOf(w, false), { store, node: w.me })).process(
          FlowBatch.from(flows),
        );
        expect(all?.length).toBe(flows.length);
        for (const r of all as FlowBatch) {
          expect(TRAFFIC_CLASSES).toContain(r.get('traffic.class'));
          expect(DESTINATION_KINDS).toContain(r.get('dst.kind'));
        }
        const meter = testMeter();
        const once = await classifier(configOf(w, true), { store, node: w.me, meter: meter.provider });
        const kept = await once.process(FlowBatch.from(flows));
        for (const c of classes(kept)) expect(TRAFFIC_CLASSES).toContain(c);
        expect((kept?.length ?? 0) + ((await meter.value('netmon_classify_duplicates_dropped')) ?? 0)).toBe(
          flows.length,
        );
        await meter.provider.shutdown();
      }),
    );
  });

  it('swapping the ends of a flow keeps its class, but for the internet direction and what only the destination has', async () => {
    await fc.assert(
      fc.asyncProperty(worlds, flowsOf, async (w, seeds) => {
        // The README's exceptions: no DNS name, no translation from a load-balancer IP or the kubernetes
        // ClusterIP (known of the address dialled only).
        const store = w.store(w.me);
        // A backend the metadata does not know (scope node, no pod CIDRs) leaves the Service dialled as
        // the end: the reverse flow has no Service.
        const drawn = seeds
          .map((f) => drawFlow(w, { ...f, domain: undefined }))
          .filter((d) => !d.translation?.lb && !d.translation?.controlPlane)
          .filter((d) => d.translation === undefined || store.lookup(at(d.end), 0) !== null);
        const p = await classifier(configOf(w, false), { store, node: w.me });
        const there = classes(await p.process(FlowBatch.from(drawn.map((d) => d.init))));
        const back = classes(
          await p.process(FlowBatch.from(drawn.map((d) => flow(d.end, d.src, { flags: d.init.flags })))),
        );
        const outsidePublic = (ip: string) => isPublic(ip) && !placed(w, store, ip);
        // A class a rule or pattern names is the class both ways, internet_egress too.
        const named = (ip: string) => ruleOf(w, ip)?.rule.class !== undefined || inPatternCidr(w, ip);
        drawn.forEach((d, i) => {
          const bothInternet = outsidePublic(d.src) && outsidePublic(d.end);
          const expected =
            named(d.src) || named(d.end) || (there[i] === 'internet_egress' && bothInternet)
              ? there[i]
              : (mirror[there[i]] ?? there[i]);
          const via = d.translation ? ` (translated to ${d.end})` : '';
          expect(back[i], `${d.src} → ${d.init.dstIp}${via}: ${there[i]}`).toBe(expected);
        });
      }),
    );
  });

  it('a rule with a class beats everything but traffic between two of this host’s addresses: the most specific CIDR at each end, the rule listed first between them', async () => {
    let decidedByRule = 0;
    let hostOnly = 0;
    await fc.assert(
      fc.asyncProperty(worlds, flowsOf, fc.nat(), async (w, seeds, extra) => {
        // This host: its node's address (the record), loopback, and one more interface address from the pool.
        const second = w.pool[extra % w.pool.length];
        const first = w.nodeIp.get(w.me) as string;
        const mine = new Set([first, second]);
        const between = (a: string, b: string, flags: number) => ({
          init: flow(a, b, { flags }),
          src: a,
          end: b,
          translation: undefined,
          domain: undefined,
        });
        const drawn = [
          ...seeds.map((f) => drawFlow(w, f)),
          // drawn flows rarely join two of the host's addresses: add some that do, whatever rules cover them
          between(first, second, FlowFlags.InitiatorKnown),
          between(second, first, FlowFlags.LocalRemote),
          between('127.0.0.1', second, FlowFlags.InitiatorKnown),
        ];
        mine.add('127.0.0.1');
        const p = await classifier(configOf(w, false), {
          store: w.store(w.me),
          node: w.me,
          host: hostWith(second),
        });
        const got = classes(await p.process(FlowBatch.from(drawn.map((d) => d.init))));
        drawn.forEach((d, i) => {
          const why = `${d.src} → ${d.init.dstIp} → ${d.end} (host: ${[...mine]})`;
          if (mine.has(d.src) && mine.has(d.end)) {
            hostOnly++;
            expect(got[i], why).toBe('same_node');
            return;
          }
          // The ends are the source and, for a translated flow, the backend (not the address dialled).
          const decided = [ruleOf(w, d.src), ruleOf(w, d.end)]
            .filter((r) => r?.rule.class !== undefined)
            .sort((a, b) => (a?.index ?? 0) - (b?.index ?? 0))[0];
          if (decided === undefined) return;
          decidedByRule++;
          expect(got[i], why).toBe(decided.rule.class);
        });
      }),
    );
    expect(decidedByRule).toBeGreaterThan(20); // the generator does reach the rules
    expect(hostOnly).toBeGreaterThan(5); // and flows between this host's own addresses
  });

  it('exactly once across the cluster: of the nodes that see a connection, exactly one keeps it', async () => {
    // Every pod must be placeable on its node: all watched, or pod CIDRs (see k8s_metadata's scope node).
    const placeable = worlds.filter((w) => w.scope === 'cluster' || w.podCidrs);
    await fc.assert(
      fc.asyncProperty(placeable, flowsOf, async (w, seeds) => {
        const procs = new Map<string, ClassifyProcessor>();
        for (const node of w.nodes) {
          procs.set(node, await classifier(configOf(w, true), { store: w.store(node), node }));
        }
        for (const f of seeds) {
          const { src: a, end: b } = drawFlow(w, { ...f, translate: undefined });
          const seers = new Set([w.nodeOf.get(a), w.nodeOf.get(b)].filter((n) => n !== undefined));
          if (a === b || seers.size === 0) continue;
          let kept = 0;
          for (const node of seers) {
            // Each node whose end it is sees the connection; without a known initiator, its own end is src.
            const [local, remote] = w.nodeOf.get(a) === node ? [a, b] : [b, a];
            const init = f.localRemote
              ? flow(local, remote, { flags: FlowFlags.LocalRemote })
              : flow(a, b, { flags: FlowFlags.InitiatorKnown });
            kept += (await procs.get(node)?.process(FlowBatch.from([init])))?.length ?? 0;
          }
          expect(kept, `${a} → ${b} seen by ${[...seers]}, initiator known: ${!f.localRemote}`).toBe(1);
        }
      }),
    );
  });
});
