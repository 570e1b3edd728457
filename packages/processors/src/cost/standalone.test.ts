// Dollars where the cluster cannot say where we are: a host outside a cluster (k8s_metadata standalone, or
// no extension at all), a cluster whose nodes name no provider or carry no region label. And traffic that
// never leaves the host: classify calls it same_node, cost prices it at $0, never with a NAT surcharge.
import { type Extension, FlowBatch, FlowFlags, type FlowInit, StatusBoard } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { K8S_METADATA, type K8sMetadata, MetadataStore, resolveBatch } from '@netmon/extensions';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ClassifyProcessor } from '../classify/classify.js';
import { classifyConfig } from '../classify/config.js';
import { HostAddresses } from '../classify/local.js';
import { eth0 } from '../classify/testdata/interfaces.js';
import { costProcessorConfig } from './config.js';
import { COST_USD, CostProcessor } from './cost.js';
import { costConfigProblems } from './testdata/config-problems.js';

const GB = 1e9;
const GiB = 2 ** 30;
const T0 = Date.parse('2026-01-01T00:00:00Z');

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** This host's interfaces as a test sets them (never the machine's running the tests). */
function hostWith(...addresses: string[]): HostAddresses {
  return new HostAddresses({ interfaces: eth0(...addresses) });
}

function metadata(
  opts: {
    provider?: () => string | undefined;
    synced?: boolean;
    standalone?: boolean;
    offline?: boolean;
    store?: MetadataStore;
    nodeName?: string;
  } = {},
): K8sMetadata {
  const store = opts.store ?? new MetadataStore();
  return {
    store,
    nodeName: opts.nodeName,
    standalone: opts.standalone ?? false,
    offline: opts.offline ?? false,
    requestPodLabels: () => undefined,
    synced: () => opts.synced ?? true,
    provider: opts.provider ?? (() => undefined),
    resolve: (batch) => resolveBatch(store, batch),
  };
}

interface Made {
  p: CostProcessor;
  logs: LogLine[];
  /** The processor's facts in /status. */
  status: () => Record<string, unknown> | undefined;
}

function cost(
  config: unknown,
  opts: { metadata?: K8sMetadata; host?: HostAddresses; id?: string } = {},
): Made {
  const extensions = new Map<string, Extension>();
  if (opts.metadata) extensions.set(K8S_METADATA, opts.metadata);
  const board = new StatusBoard();
  const settings = testSettings('processor', opts.id ?? 'cost', { extensions, board });
  const logs: LogLine[] = [];
  settings.logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const p = new CostProcessor(settings, costProcessorConfig.parse(config), opts.host ?? hostWith());
  return { p, logs, status: () => board.all()[0].details?.() };
}

interface F {
  cls: string;
  tx: number;
  rx?: number;
  srcIp?: string;
  dstIp?: string;
  attributes?: Record<string, string>;
  flags?: number;
}

function batchOf(flows: F[]): FlowBatch {
  return FlowBatch.from(
    flows.map(
      (f): FlowInit => ({
        timeStart: T0,
        timeEnd: T0 + 10_000,
        protocol: 6,
        srcIp: f.srcIp ?? '192.0.2.2',
        srcPort: 40000,
        dstIp: f.dstIp ?? '93.184.216.34',
        dstPort: 443,
        txBytes: f.tx,
        rxBytes: f.rx ?? 0,
        flags: f.flags ?? FlowFlags.InitiatorKnown,
        attributes: { 'traffic.class': f.cls, ...f.attributes },
      }),
    ),
  );
}

const dollars = (b: FlowBatch) =>
  Array.from({ length: b.length }, (_, i) => b.getAttribute(i, COST_USD) as number | undefined);

const warnings = (logs: LogLine[]) => logs.filter((l) => l.level === 40);

describe('cost: a host that names its cloud, region and zone', () => {
  const sydney = { provider: 'aws', region: 'ap-southeast-2', zone: 'ap-southeast-2a' };

  it('prices internet egress at its region’s rate, and says where on the flow', () => {
    const { p } = cost(sydney, { metadata: metadata({ standalone: true }) });
    const out = p.process(
      batchOf([
        // this host sends 1 GB out: ap-southeast-2's first paid tier, $0.114/GB (not us-east's $0.09)
        { cls: 'internet_egress', tx: GB, rx: 5 * GB },
        // a client on the internet downloads 2 GB from this host: 2 × $0.114 = $0.228
        { cls: 'internet_ingress', tx: 0.1 * GB, rx: 2 * GB, srcIp: '198.51.100.7', dstIp: '192.0.2.2' },
      ]),
    );
    expect(dollars(out)[0]).toBeCloseTo(0.114, 12);
    expect(dollars(out)[1]).toBeCloseTo(0.228, 12);
    // our end takes the configured place; the internet end has none
    expect(out.attributes(0)).toMatchObject({
      'src.cloud.region': 'ap-southeast-2',
      'src.cloud.availability_zone': 'ap-southeast-2a',
    });
    expect(out.attributes(0)['dst.cloud.region']).toBeUndefined();
    expect(out.attributes(1)).toMatchObject({
      'dst.cloud.region': 'ap-southeast-2',
      'dst.cloud.availability_zone': 'ap-southeast-2a',
    });
    expect(out.attributes(1)['src.cloud.region']).toBeUndefined();
  });

  it('the same bytes from us-east-1, or from a host that names no region, pay $0.09/GB', () => {
    const flows: F[] = [{ cls: 'internet_egress', tx: GB }];
    const standalone = metadata({ standalone: true });
    expect(
      dollars(
        cost({ provider: 'aws', region: 'us-east-1' }, { metadata: standalone }).p.process(batchOf(flows)),
      )[0],
    ).toBeCloseTo(0.09, 12);
    expect(
      dollars(cost({ provider: 'aws' }, { metadata: standalone }).p.process(batchOf(flows)))[0],
    ).toBeCloseTo(0.09, 12);
    // and without any k8s_metadata extension
    expect(dollars(cost(sydney).p.process(batchOf(flows)))[0]).toBeCloseTo(0.114, 12);
  });

  it('a region k8s_attributes wrote wins over the configured one', () => {
    const { p } = cost(sydney, { metadata: metadata({ standalone: true }) });
    const out = p.process(
      batchOf([{ cls: 'internet_egress', tx: GB, attributes: { 'src.cloud.region': 'us-east-1' } }]),
    );
    expect(dollars(out)[0]).toBeCloseTo(0.09, 12);
    expect(out.attributes(0)['src.cloud.region']).toBe('us-east-1');
    expect(out.attributes(0)['src.cloud.availability_zone']).toBeUndefined();
  });

  it('cross-region: our end without a region is in this host’s region, the far end keeps its own', () => {
    // A classify rule says 10.60.0.0/16 (a peered VPC) is cross_region, without naming its region.
    const tokyo = { provider: 'aws', region: 'ap-northeast-1' };
    const { p } = cost(tokyo, { metadata: metadata({ standalone: true }), host: hostWith('192.0.2.2') });
    const out = p.process(
      batchOf([
        // tx 1 GB from ap-northeast-1 (Asia: $0.08) + rx 1 GB from the unknown far end (default $0.02) = $0.10
        { cls: 'cross_region', tx: GB, rx: GB, srcIp: '192.0.2.2', dstIp: '10.60.1.1' },
        // the same pair opened from the far end: our end is dst; rx from ap-northeast-1 → the same $0.10
        { cls: 'cross_region', tx: GB, rx: GB, srcIp: '10.60.1.1', dstIp: '192.0.2.2' },
        // neither end is this host's (routed through it): both unknown, 2 GB × $0.02 = $0.04
        { cls: 'cross_region', tx: GB, rx: GB, srcIp: '10.70.0.1', dstIp: '10.60.1.1' },
      ]),
    );
    expect(dollars(out)[0]).toBeCloseTo(0.1, 12);
    expect(dollars(out)[1]).toBeCloseTo(0.1, 12);
    expect(dollars(out)[2]).toBeCloseTo(0.04, 12);
    expect(out.attributes(0)['src.cloud.region']).toBe('ap-northeast-1');
    expect(out.attributes(0)['dst.cloud.region']).toBeUndefined();
    expect(out.attributes(1)['dst.cloud.region']).toBe('ap-northeast-1');
    expect(out.attributes(2)['src.cloud.region']).toBeUndefined();
    // without the configured region: default both ways, $0.04
    const unplaced = cost(
      { provider: 'aws' },
      { metadata: metadata({ standalone: true }), host: hostWith('192.0.2.2') },
    );
    expect(
      dollars(unplaced.p.process(batchOf([{ cls: 'cross_region', tx: GB, rx: GB, dstIp: '10.60.1.1' }])))[0],
    ).toBeCloseTo(0.04, 12);
  });

  it('in a cluster whose nodes carry no region label, this node’s pods take the configured region', () => {
    const store = new MetadataStore();
    store.upsertNode({ name: 'node-a', provider: 'aws', ips: ['10.0.1.10'], podCidrs: ['10.1.1.0/24'] });
    const { p } = cost(
      { region: 'ap-southeast-2' },
      { metadata: metadata({ provider: () => 'aws', store, nodeName: 'node-a' }) },
    );
    const out = p.process(
      batchOf([
        // a pod on this node (k8s_attributes: src.k8s.node.name node-a, no region) → the internet: $0.114
        { cls: 'internet_egress', tx: GB, srcIp: '10.1.1.5', attributes: { 'src.k8s.node.name': 'node-a' } },
        // cross_region by a rule: our pod's end is in ap-southeast-2 (Oceania, $0.08), the far end unknown
        // ($0.02): 1 GB × 0.08 + 1 GB × 0.02 = $0.10
        {
          cls: 'cross_region',
          tx: GB,
          rx: GB,
          srcIp: '10.1.1.5',
          dstIp: '10.60.1.1',
          attributes: { 'src.k8s.node.name': 'node-a' },
        },
        // a pod of another node is not placed here: unknown both ways, $0.04
        {
          cls: 'cross_region',
          tx: GB,
          rx: GB,
          srcIp: '10.1.2.7',
          dstIp: '10.60.1.1',
          attributes: { 'src.k8s.node.name': 'node-b' },
        },
        // the node's own address (its record's InternalIP) is this host's too
        { cls: 'cross_region', tx: GB, rx: GB, srcIp: '10.0.1.10', dstIp: '10.60.1.1' },
      ]),
    );
    expect(dollars(out)).toEqual([
      expect.closeTo(0.114, 12),
      expect.closeTo(0.1, 12),
      expect.closeTo(0.04, 12),
      expect.closeTo(0.1, 12),
    ]);
    expect(p.activePricing?.provider).toBe('aws');
  });

  it('a region that is not the detected provider’s is ignored, with a warning naming the key', () => {
    const { p, logs, status } = cost(
      { region: 'eastus' },
      { metadata: metadata({ provider: () => 'aws' }), id: 'cost/edge' },
    );
    expect(dollars(p.process(batchOf([{ cls: 'internet_egress', tx: GB }])))[0]).toBeCloseTo(0.09, 12);
    expect(warnings(logs).map((l) => l.msg)).toEqual([
      'cost: processors::cost/edge::region "eastus" is not a region name of aws: ignored (aws comes from the nodes)',
    ]);
    expect(status()).toMatchObject({ state: 'priced', provider: 'aws', region: null });
  });

  it('rates.internet_egress_by_region adds regions; a flat internet_egress replaces the shipped ones', () => {
    const flows: F[] = [{ cls: 'internet_egress', tx: GiB }];
    // GCP ships no per-region figure: europe-west4 at the configured $0.085/GiB
    expect(
      dollars(
        cost({
          provider: 'gcp',
          region: 'europe-west4',
          rates: { internet_egress_by_region: { 'europe-west4': 0.085 } },
        }).p.process(batchOf(flows)),
      )[0],
    ).toBeCloseTo(0.085, 12);
    // a blended rate from the bill is one number: Sydney too pays $0.062/GB
    expect(
      dollars(
        cost({ ...sydney, rates: { internet_egress: 0.062 } }).p.process(
          batchOf([{ cls: 'internet_egress', tx: GB }]),
        ),
      )[0],
    ).toBeCloseTo(0.062, 12);
    // Azure display names work: "Japan East" is japaneast
    expect(
      dollars(
        cost({
          provider: 'azure',
          region: 'Japan East',
          rates: { internet_egress_by_region: { japaneast: 0.12 } },
        }).p.process(batchOf([{ cls: 'internet_egress', tx: GB }])),
      )[0],
    ).toBeCloseTo(0.12, 12);
  });
});

describe('cost: unknown stays unpriced, and says so once', () => {
  it('standalone without a provider: decided at once, never waiting; one warning with the keys to set; /status', () => {
    let asked = 0;
    const { p, logs, status } = cost(
      {},
      {
        metadata: metadata({
          standalone: true,
          provider: () => {
            asked++;
            return undefined;
          },
        }),
      },
    );
    // decided when made, before any batch
    expect(p.activePricing).toBeNull();
    for (let k = 0; k < 3; k++) {
      expect(p.process(batchOf([{ cls: 'internet_egress', tx: GB }])).column(COST_USD)).toBeUndefined();
    }
    expect(asked).toBe(0);
    expect(logs.filter((l) => /waiting/.test(l.msg))).toEqual([]);
    expect(warnings(logs).map((l) => l.msg)).toEqual([
      'cost: flows stay without cost.usd: no provider configured and k8s_metadata runs standalone (no cluster to read it from); set processors::cost::provider (aws, gcp or azure) and processors::cost::region to price flows',
    ]);
    expect(warnings(logs)[0].set).toEqual(['processors::cost::provider', 'processors::cost::region']);
    expect(status()).toEqual({
      state: 'unpriced',
      reason: 'no provider configured and k8s_metadata runs standalone (no cluster to read it from)',
      region: null,
      zone: null,
      nat_gateway: false,
      hint: 'set processors::cost::provider (aws, gcp or azure) and processors::cost::region to price flows',
    });
  });

  it('no k8s_metadata and no provider: the same, at once', () => {
    const { p, logs, status } = cost({ region: 'us-east-1' });
    p.process(batchOf([{ cls: 'internet_egress', tx: GB }]));
    p.process(batchOf([{ cls: 'internet_egress', tx: GB }]));
    expect(warnings(logs)).toHaveLength(1);
    expect(warnings(logs)[0].msg).toMatch(
      /k8s_metadata extension is not enabled; set processors::cost::provider/,
    );
    expect(status()).toMatchObject({ state: 'unpriced' });
  });

  it('a cluster whose nodes name no provider: waiting until listed, then unpriced (once), priced if a node says later', () => {
    let synced = false;
    let provider: string | undefined;
    const ext = metadata({ provider: () => provider });
    const live: K8sMetadata = { ...ext, synced: () => synced };
    const { p, logs, status } = cost({}, { metadata: live });
    const run = () => p.process(batchOf([{ cls: 'internet_egress', tx: GB }]));
    expect(run().column(COST_USD)).toBeUndefined();
    expect(status()).toMatchObject({ state: 'waiting' });
    synced = true;
    for (let k = 0; k < 3; k++) expect(run().column(COST_USD)).toBeUndefined();
    expect(status()).toMatchObject({
      state: 'unpriced',
      reason: 'no provider configured and no node names one (spec.providerID)',
    });
    expect(warnings(logs)).toHaveLength(1);
    provider = 'aws';
    expect(dollars(run())[0]).toBeCloseTo(0.09, 12);
    expect(status()).toMatchObject({ state: 'priced', provider: 'aws', unit: 'GB' });
  });

  it('a configured provider and place show in /status', () => {
    const { status } = cost({ provider: 'gcp', region: 'us-central1', zone: 'us-central1-a' });
    expect(status()).toEqual({
      state: 'priced',
      reason: 'provider gcp (configured)',
      provider: 'gcp',
      unit: 'GiB',
      prices_as_of: '2026-11-21',
      region: 'us-central1',
      zone: 'us-central1-a',
      nat_gateway: false,
    });
  });
});

describe('cost reads the same set of this host’s addresses as classify', () => {
  // This machine's eth0 is 192.0.2.2. A cross_region row from it to a peered VPC: when 192.0.2.2 is this
  // host's, it is in the configured region (Tokyo, Asia: $0.08 out) and the far end unknown ($0.02):
  // 1 GB each way = $0.10, and the row says src.cloud.region ap-northeast-1; when not, both ends are
  // unknown: 2 GB × $0.02 = $0.04.
  const tokyo = costProcessorConfig.parse({ provider: 'aws', region: 'ap-northeast-1' });
  function made(meta: K8sMetadata) {
    // made as the agent makes them: neither is handed a set, both take k8s_metadata's
    HostAddresses.of(meta, { interfaces: eth0('192.0.2.2') });
    const settings = testSettings('processor', 'cost', {
      extensions: new Map<string, Extension>([[K8S_METADATA, meta]]),
    });
    return new CostProcessor(settings, tokyo);
  }
  const priced = (p: CostProcessor) => {
    const out = p.process(
      batchOf([{ cls: 'cross_region', tx: GB, rx: GB, srcIp: '192.0.2.2', dstIp: '10.60.1.1' }]),
    );
    return [dollars(out)[0], out.attributes(0)['src.cloud.region']];
  };

  it('a live cluster: the interfaces count for both', () => {
    expect(priced(made(metadata()))).toEqual([expect.closeTo(0.1, 12), 'ap-northeast-1']);
  });

  it('k8s_metadata reads a snapshot: they count for neither', () => {
    expect(priced(made(metadata({ offline: true })))).toEqual([expect.closeTo(0.04, 12), undefined]);
  });

  it('classify’s host_interfaces: false applies to cost too', () => {
    const meta = metadata();
    const p = made(meta);
    new ClassifyProcessor(
      testSettings('processor', 'classify'),
      classifyConfig.parse({ host_interfaces: false }),
      meta,
      undefined,
    );
    expect(priced(p)).toEqual([expect.closeTo(0.04, 12), undefined]);
  });
});

describe('same_node: loopback and this host’s own addresses cost nothing, never a NAT', () => {
  // classify then cost, as in the default pipeline, on a standalone AWS host with two interfaces.
  const host = () => hostWith('10.0.5.5', '172.17.0.1', '2001:db8::2', 'fd00::2');
  async function pipeline(flows: FlowInit[]) {
    const meta = metadata({ standalone: true, nodeName: 'web-1' });
    const classify = new ClassifyProcessor(
      testSettings('processor', 'classify'),
      // a rule and NAT on every class that can take one: neither may touch traffic that stays on the host
      classifyConfig.parse({ rules: [{ cidrs: ['172.16.0.0/12'], class: 'external_private' }] }),
      meta,
      undefined,
      host(),
    );
    const { p } = cost(
      {
        provider: 'aws',
        region: 'us-east-1',
        nat_gateway: {
          enabled: true,
          classes: [
            'internet_egress',
            'cloud_api',
            'k8s_control_plane',
            'cross_region',
            'load_balancer',
            'external_private',
          ],
        },
      },
      { metadata: meta, host: host() },
    );
    const out = p.process((await classify.process(FlowBatch.from(flows))) as FlowBatch);
    return [...out].map((r) => [r.get('traffic.class'), r.get('dst.kind'), r.get(COST_USD)]);
  }
  const flow = (src: string, dst: string, family: 4 | 6 = 4): FlowInit => ({
    timeStart: T0,
    timeEnd: T0 + 5000,
    family,
    protocol: 6,
    srcIp: src,
    srcPort: 40000,
    dstIp: dst,
    dstPort: 8080,
    txBytes: GB,
    rxBytes: GB,
    flags: FlowFlags.InitiatorKnown,
  });

  it('loopback v4 and v6, IPv4-mapped, and between two interfaces: same_node, $0', async () => {
    expect(
      await pipeline([
        flow('127.0.0.1', '127.0.0.1'),
        flow('::1', '::1', 6),
        flow('::ffff:127.0.0.1', '::ffff:127.0.0.1', 6),
        flow('10.0.5.5', '172.17.0.1'),
        flow('2001:db8::2', 'fd00::2', 6),
      ]),
    ).toEqual([
      ['same_node', 'node', 0],
      ['same_node', 'node', 0],
      ['same_node', 'node', 0],
      ['same_node', 'node', 0],
      ['same_node', 'node', 0],
    ]);
  });

  it('while a container behind the bridge, which is not this host’s address, pays what its class says', async () => {
    // 172.17.0.2 is in the rule's range: external_private, $0 transfer + NAT 2 GB × $0.045 = $0.09 (it
    // opened the connection from a private address); the internet: 1 GB × $0.09 + NAT $0.09 = $0.18
    expect(await pipeline([flow('172.17.0.2', '172.17.0.1'), flow('10.0.5.5', '93.184.216.34')])).toEqual([
      ['external_private', 'node', expect.closeTo(0.09, 12)],
      ['internet_egress', 'external_public', expect.closeTo(0.18, 12)],
    ]);
  });

  it('cost prices same_node at $0 whatever the provider or rate overrides', () => {
    for (const provider of ['aws', 'gcp', 'azure']) {
      const { p } = cost({
        provider,
        rates: { external_private: 1, cross_zone_egress: 1 },
        nat_gateway: { enabled: true, classes: ['internet_egress', 'external_private'] },
      });
      expect(
        dollars(
          p.process(
            batchOf([{ cls: 'same_node', tx: 10 * GB, rx: 10 * GB, srcIp: '10.0.0.1', dstIp: '10.0.0.2' }]),
          ),
        ),
      ).toEqual([0]);
    }
  });
});

describe('cost: provider, region and zone keys', () => {
  it('empty values are unset (what ${env:X:-} gives), and names are trimmed', () => {
    expect(costProcessorConfig.parse({ provider: '', region: '', zone: '' })).toMatchObject({
      rates: {},
      nat_gateway: { enabled: false },
    });
    const parsed = costProcessorConfig.parse({ provider: '', region: '', zone: '' });
    expect([parsed.provider, parsed.region, parsed.zone]).toEqual([undefined, undefined, undefined]);
    expect(costProcessorConfig.parse({ provider: 'aws', region: ' us-east-1 ' }).region).toBe('us-east-1');
  });

  // Through the real config loader, so the messages are the ones a user reads.
  const problems = costConfigProblems;

  it.each([
    [{ provider: 'aws', region: 'us-east-1', zone: 'us-east-1a' }],
    [{ provider: 'aws', region: 'us-west-2', zone: 'us-west-2-lax-1a' }],
    [{ provider: 'gcp', region: 'europe-west4', zone: 'europe-west4-b' }],
    [{ provider: 'azure', region: 'East US', zone: 'eastus-2' }],
    [{ provider: 'azure', region: 'westeurope', zone: '1' }],
    [{ region: 'anything-1' }], // the provider comes from the nodes: checked when it is known
    [{ provider: 'none', region: 'nowhere' }],
    [{ provider: 'aws', rates: { internet_egress_by_region: { 'eu-west-1': 0.09, 'sa-east-1': 0.15 } } }],
  ])('%j is accepted', (config) => {
    expect(problems(config)).toEqual([]);
  });

  it.each([
    [
      { provider: 'aws', region: 'us-east-1a' },
      'processors::cost::region: "us-east-1a" is not a region name of aws (expected one like us-east-1, eu-west-1, ap-southeast-2; a zone such as us-east-1a is not a region)',
    ],
    [{ provider: 'aws', region: 'eastus' }, 'processors::cost::region: "eastus" is not a region name of aws'],
    [
      { provider: 'gcp', region: 'us-east-1' },
      'processors::cost::region: "us-east-1" is not a region name of gcp',
    ],
    [
      { provider: 'gcp', region: 'us-central1-a' },
      'processors::cost::region: "us-central1-a" is not a region name of gcp',
    ],
    [
      { provider: 'azure', region: 'us-east-1' },
      'processors::cost::region: "us-east-1" is not a region name of azure',
    ],
    [
      { provider: 'aws', region: 'us-east-1', zone: 'us-west-2a' },
      'processors::cost::zone: "us-west-2a" is not a zone of aws region us-east-1 (its zones are named like us-east-1a)',
    ],
    [
      { provider: 'aws', region: 'us-east-1', zone: 'us-east-10a' },
      'processors::cost::zone: "us-east-10a" is not a zone',
    ],
    [
      { provider: 'azure', region: 'eastus', zone: 'eastus2-1' },
      'processors::cost::zone: "eastus2-1" is not a zone',
    ],
    [{ zone: 'us-east-1a' }, 'processors::cost::zone: set region too'],
    [{ region: 42 }, 'processors::cost::region: expected a region name'],
    [
      { provider: 'aws', rates: { internet_egress_by_region: { 'us-east-1a': 0.09 } } },
      'processors::cost::rates::internet_egress_by_region::us-east-1a: "us-east-1a" is not a region name of aws',
    ],
    [
      { provider: 'azure', rates: { internet_egress_by_region: { eastus: 0.08, 'East US': 0.09 } } },
      'processors::cost::rates::internet_egress_by_region::East US: the same region as "eastus"',
    ],
    [
      { rates: { internet_egress_by_region: { 'us-east-1': -1 } } },
      'processors::cost::rates::internet_egress_by_region::us-east-1: a rate cannot be negative',
    ],
  ])('%j is rejected, naming the key', (config, expected) => {
    const found = problems(config);
    expect(
      found.some((line) => line.includes(expected)),
      found.join('\n'),
    ).toBe(true);
  });
});
