// Provider-specific patterns: a cloud's own endpoints are cloud_api (priced $0 by cost) only on a cluster of
// that cloud; elsewhere the same names and addresses are what their address says. The provider comes from
// the `provider` key, else from the nodes (k8s_metadata), and while neither says, no provider-specific
// pattern applies.
import { FlowBatch, type FlowInit, StatusBoard } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import type { K8sMetadata, MetadataStore } from '@netmon/extensions';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ClassifyProcessor } from './classify.js';
import { classifyConfig } from './config.js';
import { HostAddresses } from './local.js';
import { DEFAULT_PATTERNS, patternApplies } from './patterns.js';
import { clusterStore, flow, IP, staticMetadata } from './testdata/cluster.js';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A public address of each cloud's API, as the DNS tracer would have named it (dst.domain). */
const TO = {
  googleapis: flow(IP.web, '142.250.180.10', { attributes: { 'dst.domain': 'www.googleapis.com' } }),
  gcs: flow(IP.web, '142.250.180.11', { attributes: { 'dst.domain': 'storage.googleapis.com' } }),
  s3: flow(IP.web, '52.216.1.1', { attributes: { 'dst.domain': 's3.us-east-1.amazonaws.com' } }),
  eks: flow(IP.web, '52.94.1.1', { attributes: { 'dst.domain': 'ABCDEF.gr7.us-east-1.eks.amazonaws.com' } }),
  elb: flow(IP.web, '52.94.2.2', { attributes: { 'dst.domain': 'x.us-east-1.elb.amazonaws.com' } }),
  vpce: flow(IP.web, '10.60.1.1', {
    attributes: { 'dst.domain': 'vpce-0a1b-x.s3.us-east-1.vpce.amazonaws.com' },
  }),
  psc: flow(IP.web, '10.61.1.1', { attributes: { 'dst.domain': 'storage-xyz.p.googleapis.com' } }),
  blob: flow(IP.web, '20.60.1.1', { attributes: { 'dst.domain': 'shop.blob.core.windows.net' } }),
  aks: flow(IP.web, '20.61.1.1', { attributes: { 'dst.domain': 'shop-dns.hcp.eastus.azmk8s.io' } }),
  privatelink: flow(IP.web, '10.62.1.1', {
    attributes: { 'dst.domain': 'xy123.us-east-1.privatelink.snowflakecomputing.com' },
  }),
  imds: flow(IP.web, IP.imds),
  imdsV6: flow('fd00:1:2::7', 'fd00:ec2::254', { family: 6 }),
  wireServer: flow(IP.web, '168.63.129.16'),
};
type Dest = keyof typeof TO;
const ALL = Object.keys(TO) as Dest[];

function hostless(): HostAddresses {
  return new HostAddresses({ interfaces: () => ({}) });
}

function make(
  config: unknown,
  store: MetadataStore,
  opts: { metadata?: Partial<K8sMetadata>; id?: string } = {},
) {
  const board = new StatusBoard();
  const settings = testSettings('processor', opts.id ?? 'classify', { board });
  const logs: LogLine[] = [];
  settings.logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const metadata = { ...staticMetadata(store), ...opts.metadata };
  // Every copy kept: the IPv6 flow's source is db-0 on node-b, and exactly-once is not the question here.
  const parsed = classifyConfig.parse({ exactly_once: false, ...(config as object) });
  const p = new ClassifyProcessor(settings, parsed, metadata, undefined, hostless());
  const classes = async (flows: FlowInit[]) => {
    const out = (await p.process(FlowBatch.from(flows))) as FlowBatch;
    return [...out].map((r) => r.get('traffic.class'));
  };
  /** Each destination's class, by name. */
  const table = async (dests: Dest[] = ALL) => {
    const got = await classes(dests.map((d) => TO[d]));
    return Object.fromEntries(dests.map((d, i) => [d, got[i]]));
  };
  return {
    p,
    logs,
    classes,
    table,
    status: () => board.all()[0].details?.() as Record<string, unknown>,
    warnings: () => logs.filter((l) => l.level === 40).map((l) => l.msg),
  };
}

// What each destination is when no pattern claims it: the public ones the internet, the private ones a
// private network outside the cluster (fd00:ec2::254 is in fc00::/7, 169.254/16 link-local).
const BY_ADDRESS: Record<Dest, string> = {
  googleapis: 'internet_egress',
  gcs: 'internet_egress',
  s3: 'internet_egress',
  eks: 'internet_egress',
  elb: 'internet_egress',
  vpce: 'external_private',
  psc: 'external_private',
  blob: 'internet_egress',
  aks: 'internet_egress',
  privatelink: 'private_link', // not provider-specific: Azure's zones and third parties' names on every cloud
  imds: 'cloud_api', // 169.254.169.254 is every cloud's metadata address
  imdsV6: 'external_private',
  wireServer: 'internet_egress',
};

describe('classify: provider-specific patterns apply on their cloud only', () => {
  it('on AWS (nodes say aws): *.amazonaws.com is cloud_api, *.googleapis.com the internet', async () => {
    const c = make({}, clusterStore('aws'));
    expect(await c.table()).toEqual({
      ...BY_ADDRESS,
      s3: 'cloud_api',
      eks: 'k8s_control_plane',
      elb: 'load_balancer',
      vpce: 'private_link',
      imdsV6: 'cloud_api',
    });
    expect(c.status()).toMatchObject({
      provider: 'aws',
      provider_from: "nodes' spec.providerID (k8s_metadata)",
      provider_patterns:
        'patterns of aws apply; those of gcp, azure do not (their destinations are classed by address)',
    });
    expect(c.warnings()).toEqual([]);
  });

  it('on GCP: the reverse — *.googleapis.com is cloud_api, *.amazonaws.com the internet', async () => {
    const c = make({}, clusterStore('gcp'));
    expect(await c.table()).toEqual({
      ...BY_ADDRESS,
      googleapis: 'cloud_api',
      gcs: 'cloud_api',
      psc: 'private_link',
    });
    expect(c.status()).toMatchObject({ provider: 'gcp' });
  });

  it('on Azure: Blob storage, the AKS API server and 168.63.129.16 are Azure’s', async () => {
    const c = make({}, clusterStore('azure'));
    expect(await c.table()).toEqual({
      ...BY_ADDRESS,
      blob: 'cloud_api',
      aks: 'k8s_control_plane',
      wireServer: 'cloud_api',
    });
  });

  it('unknown provider (nodes name none): no provider-specific pattern applies, said once in the log and in /status', async () => {
    const c = make({}, clusterStore(undefined));
    expect(await c.table()).toEqual(BY_ADDRESS);
    await c.table();
    expect(c.warnings()).toEqual([
      'classify: the cloud provider is unknown (no node names one in spec.providerID): provider unknown: no provider-specific pattern applies (those of aws, gcp, azure); their destinations are classed by address, a public one as internet_egress (priced), never as a free cloud_api; set processors::classify::provider (aws, gcp, azure or none)',
    ]);
    expect(c.status()).toMatchObject({
      provider: null,
      provider_from: null,
      provider_patterns:
        'provider unknown: no provider-specific pattern applies (those of aws, gcp, azure); their destinations are classed by address, a public one as internet_egress (priced), never as a free cloud_api',
    });
  });

  it('a provider the patterns do not name (an OpenStack cluster): none of theirs apply, no warning', async () => {
    const c = make({}, clusterStore('openstack'));
    expect(await c.table()).toEqual(BY_ADDRESS);
    expect(c.warnings()).toEqual([]);
    expect(c.status()).toMatchObject({
      provider: 'openstack',
      provider_from: "nodes' spec.providerID (k8s_metadata)",
    });
  });

  it('while the nodes are not listed yet nothing is warned; the provider is taken when they are', async () => {
    const store = clusterStore(undefined);
    let synced = false;
    const c = make({}, store, { metadata: { synced: () => synced } });
    expect(await c.table(['s3', 'googleapis'])).toEqual({
      s3: 'internet_egress',
      googleapis: 'internet_egress',
    });
    expect(c.warnings()).toEqual([]);
    // The nodes arrive (an informer's list): node-a now says aws.
    synced = true;
    store.upsertNode({
      name: 'node-a',
      zone: 'us-east-1a',
      region: 'us-east-1',
      provider: 'aws',
      ips: [IP.nodeA],
      podCidrs: ['10.1.1.0/24'],
    });
    expect(await c.table(['s3', 'googleapis'])).toEqual({ s3: 'cloud_api', googleapis: 'internet_egress' });
    expect(c.warnings()).toEqual([]);
    expect(c.logs.filter((l) => l.level === 30).map((l) => l.msg)).toContain(
      "classify: provider aws (nodes' spec.providerID): patterns of aws apply; those of gcp, azure do not (their destinations are classed by address)",
    );
  });

  it('asks the nodes again only when they change, not per batch', async () => {
    const store = clusterStore('aws');
    let asked = 0;
    const metadata = staticMetadata(store);
    const c = make({}, store, {
      metadata: {
        provider: () => {
          asked++;
          return metadata.provider();
        },
      },
    });
    for (let i = 0; i < 5; i++) await c.classes([TO.s3]);
    expect(asked).toBe(1);
    store.upsertNode({
      name: 'node-new',
      zone: 'us-east-1b',
      region: 'us-east-1',
      provider: 'gcp',
      ips: ['10.0.9.9'],
      podCidrs: [],
    });
    await c.classes([TO.s3]);
    expect(asked).toBe(2);
  });

  it('the provider key wins over the nodes (as cost’s does), and a disagreement is said once', async () => {
    const c = make({ provider: 'gcp' }, clusterStore('aws'));
    expect(await c.table(['googleapis', 's3'])).toEqual({ googleapis: 'cloud_api', s3: 'internet_egress' });
    await c.table(['googleapis']);
    expect(c.warnings()).toEqual([
      "classify: processors::classify::provider is gcp but the nodes' spec.providerID says aws: the configured provider's patterns apply",
    ]);
    expect(c.status()).toMatchObject({ provider: 'gcp', provider_from: 'processors::classify::provider' });
  });

  it('the provider key where the nodes cannot say (a host outside a cluster): standalone, no warning', async () => {
    const c = make({ provider: 'aws' }, clusterStore(undefined), { metadata: { standalone: true } });
    expect(await c.table(['googleapis', 's3'])).toEqual({ googleapis: 'internet_egress', s3: 'cloud_api' });
    expect(c.warnings()).toEqual([]);
  });

  it('standalone without the key: decided unknown at once, one warning naming the key of this instance', () => {
    const c = make({}, clusterStore(undefined), { metadata: { standalone: true }, id: 'classify/edge' });
    expect(c.warnings()).toHaveLength(1);
    expect(c.warnings()[0]).toMatch(
      /^classify: the cloud provider is unknown \(k8s_metadata runs standalone \(no nodes to read it from\)\): .*set processors::classify\/edge::provider \(aws, gcp, azure or none\)$/,
    );
  });

  it('provider: none — on no cloud: no provider-specific pattern, no warning; empty is unset', async () => {
    const none = make({ provider: 'none' }, clusterStore('aws'));
    expect(await none.table()).toEqual(BY_ADDRESS);
    expect(none.status()).toMatchObject({
      provider: 'none',
      provider_from: 'processors::classify::provider',
    });
    expect(none.status().provider_patterns).toMatch(/^provider none: no provider-specific pattern applies/);
    // ${env:NETMON_CLOUD_PROVIDER:-} with the variable unset gives '': the nodes decide.
    const empty = make({ provider: '' }, clusterStore('gcp'));
    expect(await empty.table(['googleapis'])).toEqual({ googleapis: 'cloud_api' });
    expect(empty.status()).toMatchObject({ provider: 'gcp' });
  });

  it('user patterns take provider too: one cloud, a list, or none (everywhere)', async () => {
    const patterns = [
      { class: 'cloud_api', domains: ['*.objects.example-cloud.net'], provider: ['gcp', 'azure'] },
      { class: 'private_link', cidrs: ['10.70.0.0/16'], provider: 'aws' },
      { class: 'cloud_api', cidrs: ['192.168.50.0/24'] },
    ];
    const flows = [
      flow(IP.web, '198.18.0.0', { attributes: { 'dst.domain': 'b.objects.example-cloud.net' } }),
      flow(IP.web, '34.1.1.1', { attributes: { 'dst.domain': 'b.objects.example-cloud.net' } }),
      flow(IP.web, '10.70.3.3'),
      flow(IP.web, IP.corp),
    ];
    const on = async (provider: string | undefined) =>
      make({ patterns }, clusterStore(provider)).classes(flows);
    expect(await on('aws')).toEqual(['external_private', 'internet_egress', 'private_link', 'cloud_api']);
    expect(await on('gcp')).toEqual(['cloud_api', 'cloud_api', 'external_private', 'cloud_api']);
    expect(await on('azure')).toEqual(['cloud_api', 'cloud_api', 'external_private', 'cloud_api']);
    expect(await on(undefined)).toEqual([
      'external_private',
      'internet_egress',
      'external_private',
      'cloud_api',
    ]);
  });

  it('a list with no provider-specific pattern: no warning while the provider is unknown', async () => {
    const c = make(
      { patterns: [{ class: 'cloud_api', cidrs: ['192.168.50.0/24'] }] },
      clusterStore(undefined),
    );
    expect(await c.classes([flow(IP.web, IP.corp)])).toEqual(['cloud_api']);
    expect(c.warnings()).toEqual([]);
    expect(c.status()).toMatchObject({ provider_patterns: 'no pattern names a provider: all apply' });
  });

  it('a provider-specific pattern that loses its cloud lets a less specific CIDR of another pattern match', async () => {
    const patterns = [
      { class: 'private_link', cidrs: ['10.70.1.0/24'], provider: 'aws' },
      { class: 'cloud_api', cidrs: ['10.70.0.0/16'] },
    ];
    expect(await make({ patterns }, clusterStore('aws')).classes([flow(IP.web, '10.70.1.1')])).toEqual([
      'private_link',
    ]);
    expect(await make({ patterns }, clusterStore('gcp')).classes([flow(IP.web, '10.70.1.1')])).toEqual([
      'cloud_api',
    ]);
  });

  it('names the key and what was expected for a bad provider', () => {
    const issue = (config: unknown) => {
      const r = classifyConfig.safeParse(config);
      expect(r.success).toBe(false);
      return r.error?.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
    };
    expect(issue({ provider: 'amazon' })).toEqual([
      'provider: "amazon" is not a provider; expected aws, gcp, azure or none',
    ]);
    expect(issue({ patterns: [{ class: 'cloud_api', domains: ['x'], provider: 'amazon' }] })?.join()).toMatch(
      /patterns::0::provider.*"amazon" is not a provider a pattern can belong to; expected aws, gcp, azure/,
    );
    expect(issue({ patterns: [{ class: 'cloud_api', domains: ['x'], provider: [] }] })?.join()).toMatch(
      /patterns::0::provider.*name at least one provider, or leave the key out/,
    );
  });

  it('the shipped table: every pattern naming one cloud’s service says which; the shared metadata address does not', () => {
    const names = (provider: string | undefined) =>
      DEFAULT_PATTERNS.filter((p) => patternApplies(p, provider)).flatMap((p) => [...p.cidrs, ...p.domains]);
    expect(names(undefined)).toEqual(['*.privatelink.*', '169.254.169.254/32']);
    expect(names('aws')).toEqual([
      '*.vpce.amazonaws.com',
      '*.privatelink.*',
      '*.eks.amazonaws.com',
      '*.elb.amazonaws.com',
      '169.254.169.254/32',
      'fd00:ec2::254/128',
      '*.amazonaws.com',
    ]);
    expect(names('gcp')).toEqual([
      '*.privatelink.*',
      '*.p.googleapis.com',
      '169.254.169.254/32',
      '*.googleapis.com',
      'metadata.google.internal',
    ]);
    expect(names('azure')).toEqual([
      '*.privatelink.*',
      '*.azmk8s.io',
      '169.254.169.254/32',
      '168.63.129.16/32',
      '*.core.windows.net',
      'management.azure.com',
    ]);
  });
});
