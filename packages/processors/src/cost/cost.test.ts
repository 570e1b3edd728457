import { CidrTable, type Extension, FlowBatch, FlowFlags, type FlowInit, parseIp } from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import type { K8sMetadata } from '@netmon/extensions';
import { MetadataStore } from '@netmon/extensions';
import { describe, expect, it } from 'vitest';
import { costProcessorConfig } from './config.js';
import { COST_USD, CostProcessor, isPlatformAddress, NAT_BYPASS_PLATFORM } from './cost.js';
import { costProcessorFactory } from './factory.js';
import { costConfigProblems } from './testdata/config-problems.js';

const GB = 1e9;
const GiB = 2 ** 30;
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** One flow: its class, bytes each way, regions and destination, as classify and k8s_attributes leave it. */
interface F {
  cls?: string;
  tx: number;
  rx?: number;
  src?: string;
  dst?: string;
  dstIp?: string;
  srcIp?: string;
  /** src.k8s.node.name, as k8s_attributes writes it for an end in the cluster ('': absent on this row). */
  srcNode?: string;
  backendIp?: string;
  flags?: number;
}

function batchOf(flows: F[]): FlowBatch {
  return FlowBatch.from(
    flows.map((f): FlowInit => {
      const attributes: Record<string, string> = {};
      if (f.cls !== undefined) attributes['traffic.class'] = f.cls;
      if (f.src !== undefined) attributes['src.cloud.region'] = f.src;
      if (f.dst !== undefined) attributes['dst.cloud.region'] = f.dst;
      if (f.srcNode) attributes['src.k8s.node.name'] = f.srcNode;
      return {
        timeStart: T0,
        timeEnd: T0 + 10_000,
        protocol: 6,
        srcIp: f.srcIp ?? '10.0.0.1',
        srcPort: 40000,
        dstIp: f.dstIp ?? '10.0.1.2',
        dstPort: 443,
        ...(f.backendIp === undefined ? {} : { backendIp: f.backendIp, backendPort: 443 }),
        ...(f.flags === undefined ? {} : { flags: f.flags }),
        txBytes: f.tx,
        rxBytes: f.rx ?? 0,
        attributes,
      };
    }),
  );
}

function processor(config: unknown, extensions = new Map<string, Extension>()): CostProcessor {
  return new CostProcessor(
    testSettings('processor', 'cost', { extensions }),
    costProcessorFactory.config.parse(config),
  );
}

/** cost.usd of each row (undefined: absent). */
function costs(p: CostProcessor, flows: F[]): (number | undefined)[] {
  const b = p.process(batchOf(flows));
  return Array.from({ length: b.length }, (_, i) => b.getAttribute(i, COST_USD) as number | undefined);
}

/** The cost of one flow. */
const costOf = (config: unknown, f: F) => costs(processor(config), [f])[0];

const aws = { provider: 'aws' };
const gcp = { provider: 'gcp' };
const azure = { provider: 'azure' };

describe('cost: AWS (per GB = 1e9 bytes)', () => {
  it('same node, same zone and external private are free', () => {
    for (const cls of ['same_node', 'same_zone', 'external_private'])
      expect(costOf(aws, { cls, tx: 5 * GB, rx: 5 * GB })).toBe(0);
  });
  it('cross-zone is charged at each end', () => {
    // 1 GB tx: 1 GB × 2 ends × $0.01/GB = $0.02
    expect(costOf(aws, { cls: 'cross_zone', tx: GB })).toBeCloseTo(0.02, 12);
    // 1 GB tx + 0.5 GB rx: 1.5 GB × 2 × $0.01 = $0.03
    expect(costOf(aws, { cls: 'cross_zone', tx: GB, rx: 0.5 * GB })).toBeCloseTo(0.03, 12);
  });
  it('cross-region: each direction at its sender’s region rate', () => {
    // us-east-1 → eu-west-1: 1 GB × $0.02 (from NA) + 0.5 GB × $0.02 (from EU) = $0.03
    expect(
      costOf(aws, { cls: 'cross_region', tx: GB, rx: 0.5 * GB, src: 'us-east-1', dst: 'eu-west-1' }),
    ).toBeCloseTo(0.03, 12);
    // ap-northeast-1 → us-east-1: 1 GB × $0.08 (from Asia) + 0.5 GB × $0.02 (from NA) = $0.09
    expect(
      costOf(aws, { cls: 'cross_region', tx: GB, rx: 0.5 * GB, src: 'ap-northeast-1', dst: 'us-east-1' }),
    ).toBeCloseTo(0.09, 12);
    // sa-east-1 → ap-southeast-2 (Sydney, Oceania): 1 GB × $0.08 + 1 GB × $0.08 = $0.16
    expect(
      costOf(aws, { cls: 'cross_region', tx: GB, rx: GB, src: 'sa-east-1', dst: 'ap-southeast-2' }),
    ).toBeCloseTo(0.16, 12);
  });
  it('cross-region with unknown regions uses the default pair rate', () => {
    // no regions at all: 2 GB × cross_region_default $0.02 = $0.04
    expect(costOf(aws, { cls: 'cross_region', tx: GB, rx: GB })).toBeCloseTo(0.04, 12);
    // AWS prices by the sender only, so a known sender is enough for its direction:
    // tx from ap-south-1 (Asia, $0.08 anywhere) = $0.08; rx from the unknown end = default $0.02 → $0.10
    expect(costOf(aws, { cls: 'cross_region', tx: GB, rx: GB, src: 'ap-south-1' })).toBeCloseTo(0.1, 12);
    // a region name nobody knows: default both ways, 2 GB × $0.02 = $0.04
    expect(
      costOf(aws, { cls: 'cross_region', tx: GB, rx: GB, src: 'moon-base-1', dst: 'us-east-1' }),
    ).toBeCloseTo(0.04, 12);
  });
  it('internet: only what our side sends out, at the blended rate', () => {
    // egress: 1 GB tx × $0.09 = $0.09; the 5 GB answer is inbound, free
    expect(costOf(aws, { cls: 'internet_egress', tx: GB, rx: 5 * GB })).toBeCloseTo(0.09, 12);
    // ingress: the client's 5 GB is free; our 1 GB of answers (rx) × $0.09 = $0.09
    expect(costOf(aws, { cls: 'internet_ingress', tx: 5 * GB, rx: GB })).toBeCloseTo(0.09, 12);
  });
  it('private link: processing of every byte, either direction', () => {
    // (1 GB + 1 GB) × $0.01/GB = $0.02
    expect(costOf(aws, { cls: 'private_link', tx: GB, rx: GB })).toBeCloseTo(0.02, 12);
  });
  it('cloud APIs and the control plane are free by default', () => {
    expect(costOf(aws, { cls: 'cloud_api', tx: GB, rx: GB })).toBe(0);
    expect(costOf(aws, { cls: 'k8s_control_plane', tx: GB, rx: GB })).toBe(0);
  });
  it('load balancer: processing both directions', () => {
    // (1 GB + 1 GB) × $0.008 = $0.016
    expect(costOf(aws, { cls: 'load_balancer', tx: GB, rx: GB })).toBeCloseTo(0.016, 12);
  });
});

describe('cost: GCP (per GiB = 2^30 bytes)', () => {
  it('same node, same zone and external private are free', () => {
    for (const cls of ['same_node', 'same_zone', 'external_private'])
      expect(costOf(gcp, { cls, tx: GiB, rx: GiB })).toBe(0);
  });
  it('cross-zone is charged at the sender only, per GiB', () => {
    // 1 GiB tx + 1 GiB rx: each byte once at its sender, 2 GiB × $0.01 = $0.02
    expect(costOf(gcp, { cls: 'cross_zone', tx: GiB, rx: GiB })).toBeCloseTo(0.02, 12);
    // 1 GB (not GiB) tx: 1e9 / 2^30 GiB × $0.01 = $0.009313225746154785
    expect(costOf(gcp, { cls: 'cross_zone', tx: GB })).toBeCloseTo(0.009313225746154785, 15);
  });
  it('cross-region: same continent vs intercontinental', () => {
    // us-central1 → us-east1: 2 GiB × $0.02 = $0.04
    expect(
      costOf(gcp, { cls: 'cross_region', tx: GiB, rx: GiB, src: 'us-central1', dst: 'us-east1' }),
    ).toBeCloseTo(0.04, 12);
    // northamerica-northeast1 → europe-west4: 2 GiB × $0.08 = $0.16
    expect(
      costOf(gcp, {
        cls: 'cross_region',
        tx: GiB,
        rx: GiB,
        src: 'northamerica-northeast1',
        dst: 'europe-west4',
      }),
    ).toBeCloseTo(0.16, 12);
    // asia-east1 → australia-southeast1: Asia ≠ Oceania, 1 GiB × $0.08 = $0.08
    expect(
      costOf(gcp, { cls: 'cross_region', tx: GiB, src: 'asia-east1', dst: 'australia-southeast1' }),
    ).toBeCloseTo(0.08, 12);
    // unknown destination: GCP prices both cases differently, so the default $0.02
    expect(costOf(gcp, { cls: 'cross_region', tx: GiB, src: 'us-central1' })).toBeCloseTo(0.02, 12);
  });
  it('internet egress at the premium-tier first-TiB rate', () => {
    // 1 GiB tx × $0.12 = $0.12 (rx inbound free)
    expect(costOf(gcp, { cls: 'internet_egress', tx: GiB, rx: 3 * GiB })).toBeCloseTo(0.12, 12);
    expect(costOf(gcp, { cls: 'internet_ingress', tx: 3 * GiB, rx: GiB })).toBeCloseTo(0.12, 12);
  });
  it('Private Service Connect at the estimated rate; load balancer 0 until configured', () => {
    // (1 GiB + 1 GiB) × $0.01 (estimate) = $0.02
    expect(costOf(gcp, { cls: 'private_link', tx: GiB, rx: GiB })).toBeCloseTo(0.02, 12);
    expect(costOf(gcp, { cls: 'load_balancer', tx: GiB, rx: GiB })).toBe(0);
  });
});

describe('cost: Azure (per GB)', () => {
  it('cross-zone is free', () => {
    expect(costOf(azure, { cls: 'cross_zone', tx: 10 * GB, rx: 10 * GB })).toBe(0);
  });
  it('cross-region by continent: NA/EU $0.02, intercontinental $0.05, Asia $0.08, South America $0.16', () => {
    // eastus → westus2: 2 GB × $0.02 = $0.04
    expect(costOf(azure, { cls: 'cross_region', tx: GB, rx: GB, src: 'eastus', dst: 'westus2' })).toBeCloseTo(
      0.04,
      12,
    );
    // eastus → westeurope: NA→EU $0.05 + EU→NA $0.05 = $0.10
    expect(
      costOf(azure, { cls: 'cross_region', tx: GB, rx: GB, src: 'eastus', dst: 'westeurope' }),
    ).toBeCloseTo(0.1, 12);
    // brazilsouth → eastus: 1 GB × $0.16 (from South America) + 1 GB × $0.05 (NA → SA) = $0.21
    expect(
      costOf(azure, { cls: 'cross_region', tx: GB, rx: GB, src: 'brazilsouth', dst: 'eastus' }),
    ).toBeCloseTo(0.21, 12);
    // japaneast → eastasia: 2 GB × $0.08 = $0.16; display names work too
    expect(
      costOf(azure, { cls: 'cross_region', tx: GB, rx: GB, src: 'Japan East', dst: 'East Asia' }),
    ).toBeCloseTo(0.16, 12);
  });
  it('internet egress $0.087/GB', () => {
    expect(costOf(azure, { cls: 'internet_egress', tx: GB })).toBeCloseTo(0.087, 12);
  });
  it('private link: $0.01/GB inbound (tx) + $0.01/GB outbound (rx)', () => {
    // 1 GB × $0.01 + 2 GB × $0.01 = $0.03
    expect(costOf(azure, { cls: 'private_link', tx: GB, rx: 2 * GB })).toBeCloseTo(0.03, 12);
  });
});

describe('cost: NAT gateway surcharge', () => {
  const nat = (provider: string, extra: object = {}) => ({
    provider,
    nat_gateway: { enabled: true, ...extra },
  });
  it('adds processing of both directions on top of transfer', () => {
    // internet egress 1 GB out, 1 GB back: transfer 1 GB × $0.09 + NAT 2 GB × $0.045 = $0.18
    expect(
      costOf(nat('aws'), { cls: 'internet_egress', tx: GB, rx: GB, dstIp: '93.184.216.34' }),
    ).toBeCloseTo(0.18, 12);
    // cloud API (transfer $0): NAT 2 GB × $0.045 = $0.09
    expect(costOf(nat('aws'), { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '52.216.8.1' })).toBeCloseTo(
      0.09,
      12,
    );
    // GCP per GiB: 1 GiB out × $0.12 + NAT 1 GiB × $0.045 = $0.165
    expect(costOf(nat('gcp'), { cls: 'internet_egress', tx: GiB, dstIp: '93.184.216.34' })).toBeCloseTo(
      0.165,
      12,
    );
    // Azure: 1 GB × $0.087 + NAT 1 GB × $0.045 = $0.132
    expect(costOf(nat('azure'), { cls: 'internet_egress', tx: GB, dstIp: '93.184.216.34' })).toBeCloseTo(
      0.132,
      12,
    );
  });
  it('only on the configured classes, and not when disabled', () => {
    // k8s_control_plane is not in the default classes: $0
    expect(costOf(nat('aws'), { cls: 'k8s_control_plane', tx: GB, rx: GB })).toBe(0);
    expect(
      costOf(nat('aws', { classes: ['k8s_control_plane'] }), { cls: 'k8s_control_plane', tx: GB, rx: GB }),
    ).toBeCloseTo(0.09, 12);
    // disabled (the default): transfer only, 1 GB × $0.09
    expect(costOf(aws, { cls: 'internet_egress', tx: GB, rx: GB })).toBeCloseTo(0.09, 12);
  });
  it('not for destinations in exclude_cidrs (IPv4 and IPv6)', () => {
    const p = processor(nat('aws', { exclude_cidrs: ['52.216.0.0/15', '2600:1fa0::/32'] }));
    const out = costs(p, [
      // S3 through a gateway endpoint: no NAT, no transfer → $0
      { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '52.217.1.1' },
      // another AWS API through the NAT: 2 GB × $0.045 = $0.09
      { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '54.239.28.85' },
      { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '2600:1fa0:8000::1' },
      { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '2600:1f18::1' },
    ]);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(0.09, 12);
    expect(out[2]).toBe(0);
    expect(out[3]).toBeCloseTo(0.09, 12);
  });
  it('never to link-local and platform addresses, though classify calls them cloud_api', () => {
    const p = processor(nat('aws'));
    const platform = [
      '169.254.169.254', // IMDS (AWS, GCP, Azure)
      '169.254.169.253', // AWS DNS resolver
      '169.254.170.2', // ECS task metadata: anything link-local
      'fd00:ec2::254', // AWS IMDS over IPv6 (Nitro)
      'fd00:ec2::253', // AWS DNS over IPv6
      'fe80::1',
      '127.0.0.1',
    ];
    // 1 GB each way: before the fix the NAT surcharge made each $0.09; no transfer charge either → $0
    expect(
      costs(
        p,
        platform.map((dstIp) => ({ cls: 'cloud_api', tx: GB, rx: GB, dstIp })),
      ),
    ).toEqual(platform.map(() => 0));
    // the review's case: 2 GB to IMDS, in one direction, was 2 GB × $0.045 = $0.09; now $0
    expect(costOf(nat('aws'), { cls: 'cloud_api', tx: 2 * GB, dstIp: '169.254.169.254' })).toBe(0);
    // a neighbour of a platform address is not one: 168.63.129.17 through the NAT, 2 GB × $0.045 = $0.09
    expect(costOf(nat('azure'), { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '168.63.129.17' })).toBeCloseTo(
      0.09,
      12,
    );
    // platform addresses bypass the NAT for every NAT class, not only cloud_api: transfer $0.09 only
    expect(
      costOf(nat('aws'), { cls: 'internet_egress', tx: GB, rx: GB, dstIp: '169.254.169.254' }),
    ).toBeCloseTo(0.09, 12);
    // Azure's platform address (WireServer, DNS, health probes) is answered by the host on Azure…
    expect(costOf(nat('azure'), { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '168.63.129.16' })).toBe(0);
    // …and is one of Microsoft's public addresses elsewhere: from AWS, transfer 1 GB × $0.09 plus the NAT
    // on both directions, 2 GB × $0.045
    expect(
      costOf(nat('aws'), { cls: 'internet_egress', tx: GB, rx: GB, dstIp: '168.63.129.16' }),
    ).toBeCloseTo(0.09 + 0.09, 12);
  });
  it('the byte test of platform addresses agrees with NAT_BYPASS_PLATFORM, at and around each edge, per cloud', () => {
    const addresses = [
      ...['169.254.0.0', '169.254.255.255', '169.253.255.255', '169.255.0.0', '127.0.0.1', '126.255.255.255'],
      ...['128.0.0.0', '168.63.129.15', '168.63.129.16', '168.63.129.17', '0.0.0.0', '10.0.0.1'],
      ...['fe80::', 'febf:ffff::1', 'fec0::', 'fe7f::1', '::1', '::', '::2', '::ffff:7f00:1'],
      ...['fd00:ec2::', 'fd00:ec2:ffff::1', 'fd00:ec3::1', 'fd00:ec1::1', 'fd01:ec2::1', '2600:1f18::1'],
    ];
    const buf = new Uint8Array(16);
    for (const provider of ['aws', 'gcp', 'azure'] as const) {
      const table = new CidrTable<true>();
      for (const c of NAT_BYPASS_PLATFORM[provider]) table.add(c, true);
      for (const a of addresses) {
        expect(parseIp(a, buf, 0), a).not.toBe(0);
        expect(isPlatformAddress(buf, 0, provider), `${provider} ${a}`).toBe(table.lookup(buf, 0) === true);
      }
    }
    // Each cloud's own platform address, and only there.
    parseIp('168.63.129.16', buf, 0);
    expect([isPlatformAddress(buf, 0, 'azure'), isPlatformAddress(buf, 0, 'aws')]).toEqual([true, false]);
    parseIp('fd00:ec2::254', buf, 0);
    expect([isPlatformAddress(buf, 0, 'aws'), isPlatformAddress(buf, 0, 'gcp')]).toEqual([true, false]);
  });
  it('never on connections opened from outside (src is the initiator), whichever end gave the class', () => {
    const p = processor(nat('azure'));
    const out = costs(p, [
      // Azure's platform probing a pod: classed cloud_api by its source address; before the fix
      // (exclusions checked on dst, the pod) 2 GB × $0.045 = $0.09; a platform address, and inbound → $0
      { cls: 'cloud_api', tx: GB, rx: GB, srcIp: '168.63.129.16', dstIp: '10.0.0.1' },
      // a cloud service (public address) calling a webhook in a pod: inbound, no NAT → $0
      { cls: 'cloud_api', tx: GB, rx: GB, srcIp: '20.150.1.1', dstIp: '10.0.0.1' },
      // the same pair, opened by the pod: through the NAT, 2 GB × $0.045 = $0.09
      { cls: 'cloud_api', tx: GB, rx: GB, srcIp: '10.0.0.1', dstIp: '20.150.1.1' },
    ]);
    expect(out[0]).toBe(0);
    expect(out[1]).toBe(0);
    expect(out[2]).toBeCloseTo(0.09, 12);
  });
  it('with k8s_attributes, the initiator must be in the cluster (src.k8s.node.name)', () => {
    const p = processor(nat('aws', { classes: ['external_private', 'cloud_api'] }));
    const out = costs(p, [
      // a pod opens a connection to the office network through a private NAT: 2 GB × $0.045 = $0.09
      { cls: 'external_private', tx: GB, rx: GB, srcNode: 'node-a', dstIp: '192.168.50.5' },
      // an office host (private, outside the cluster) opens one to the pod: not through our NAT → $0
      { cls: 'external_private', tx: GB, rx: GB, srcIp: '192.168.50.5', srcNode: '', dstIp: '10.0.0.1' },
      // a hostNetwork agent on a node calls a cloud API: the node is in the cluster → $0.09
      { cls: 'cloud_api', tx: GB, rx: GB, srcIp: '10.0.1.10', srcNode: 'node-a', dstIp: '54.239.28.85' },
    ]);
    expect(out[0]).toBeCloseTo(0.09, 12);
    expect(out[1]).toBe(0);
    expect(out[2]).toBeCloseTo(0.09, 12);
  });
  it('exclude_cidrs are matched on the remote end: the address dialled and, after DNAT, the one reached', () => {
    const p = processor(nat('aws', { exclude_cidrs: ['52.216.0.0/15', '10.50.0.0/16'] }));
    const out = costs(p, [
      // a Service (ClusterIP) whose endpoint is in S3's excluded range: reached without the NAT → $0
      { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '172.20.0.10', backendIp: '52.217.1.1' },
      // the same Service DNAT'ed to an address the NAT carries: 2 GB × $0.045 = $0.09
      { cls: 'cloud_api', tx: GB, rx: GB, dstIp: '172.20.0.10', backendIp: '54.239.28.85' },
      // a host of the excluded peered range opening a connection to a pod: inbound, never NAT → $0
      { cls: 'cloud_api', tx: GB, rx: GB, srcIp: '10.50.3.3', dstIp: '10.0.0.1' },
    ]);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(0.09, 12);
    expect(out[2]).toBe(0);
  });
  it('initiator unknown (local/remote receivers): src is the local end, counted as the opener', () => {
    // pod → public peer, who dialled unknown: as classify's internet_egress, the NAT applies:
    // 1 GB × $0.09 + 2 GB × $0.045 = $0.18
    expect(
      costOf(nat('aws'), {
        cls: 'internet_egress',
        tx: GB,
        rx: GB,
        srcNode: 'node-a',
        dstIp: '93.184.216.34',
        flags: FlowFlags.LocalRemote,
      }),
    ).toBeCloseTo(0.18, 12);
  });
});

describe('cost: rate overrides', () => {
  it('a flat key replaces the list price, in the provider’s unit', () => {
    // 1 GB × $0.05 (negotiated blended rate)
    expect(
      costOf({ ...aws, rates: { internet_egress: 0.05 } }, { cls: 'internet_egress', tx: GB }),
    ).toBeCloseTo(0.05, 12);
    // GCP, per GiB: 1 GiB × $0.085 (Standard tier)
    expect(
      costOf({ ...gcp, rates: { internet_egress: 0.085 } }, { cls: 'internet_egress', tx: GiB }),
    ).toBeCloseTo(0.085, 12);
    // Azure VNet peering behind external_private: $0.01 out at the sender + $0.01 in at the receiver
    expect(
      costOf({ ...azure, rates: { external_private: 0.02 } }, { cls: 'external_private', tx: GB, rx: GB }),
    ).toBeCloseTo(0.04, 12);
    // cloud_api and load_balancer are overridable too
    expect(
      costOf({ ...gcp, rates: { load_balancer: 0.008 } }, { cls: 'load_balancer', tx: GiB }),
    ).toBeCloseTo(0.008, 12);
    // cross-zone ingress can be turned off (e.g. a GCP-like rule on AWS): 1 GB × $0.01
    expect(costOf({ ...aws, rates: { cross_zone_ingress: 0 } }, { cls: 'cross_zone', tx: GB })).toBeCloseTo(
      0.01,
      12,
    );
    // NAT rate
    expect(
      costOf(
        { ...aws, rates: { nat_gateway: 0.05 }, nat_gateway: { enabled: true } },
        { cls: 'cloud_api', tx: GB, dstIp: '8.8.8.8' },
      ),
    ).toBeCloseTo(0.05, 12);
  });
  it('one field of one continent, leaving the rest', () => {
    const config = { ...aws, rates: { cross_region: { asia: { same_continent: 0.09 } } } };
    // ap-northeast-1 → ap-southeast-1: same continent, overridden: 1 GB × $0.09
    expect(
      costOf(config, { cls: 'cross_region', tx: GB, src: 'ap-northeast-1', dst: 'ap-southeast-1' }),
    ).toBeCloseTo(0.09, 12);
    // ap-northeast-1 → us-east-1: intercontinental, untouched $0.08
    expect(
      costOf(config, { cls: 'cross_region', tx: GB, src: 'ap-northeast-1', dst: 'us-east-1' }),
    ).toBeCloseTo(0.08, 12);
  });
  it('exact region pairs win over the continent rule, one direction each', () => {
    const config = {
      ...aws,
      rates: { cross_region_pairs: [{ from: 'us-east-1', to: 'us-west-2', rate: 0.01 }] },
    };
    // tx us-east-1 → us-west-2 at the pair's $0.01; rx us-west-2 → us-east-1 at the NA rate $0.02: $0.03
    expect(
      costOf(config, { cls: 'cross_region', tx: GB, rx: GB, src: 'us-east-1', dst: 'us-west-2' }),
    ).toBeCloseTo(0.03, 12);
    // names compare without case
    expect(costOf(config, { cls: 'cross_region', tx: GB, src: 'US-EAST-1', dst: 'us-west-2' })).toBeCloseTo(
      0.01,
      12,
    );
  });
});

describe('cost: absent values', () => {
  it('a flow without a class, or with a class we do not know, has no cost', () => {
    const out = costs(processor(aws), [
      { cls: 'internet_egress', tx: GB },
      { tx: GB },
      { cls: 'teleport', tx: GB },
    ]);
    expect(out[0]).toBeCloseTo(0.09, 12);
    expect(out[1]).toBeUndefined();
    expect(out[2]).toBeUndefined();
  });
  it('a batch without traffic.class gets no cost column', () => {
    const b = processor(aws).process(batchOf([{ tx: GB }]));
    expect(b.column(COST_USD)).toBeUndefined();
  });
  it('provider none: no cost column at all', () => {
    const b = processor({ provider: 'none' }).process(batchOf([{ cls: 'internet_egress', tx: GB }]));
    expect(b.column(COST_USD)).toBeUndefined();
  });
  it('an existing cost.usd is replaced, row by row', () => {
    const b = batchOf([{ cls: 'internet_egress', tx: GB }, { tx: GB }]);
    b.setAttribute(0, COST_USD, 99);
    b.setAttribute(1, COST_USD, 99);
    processor(aws).process(b);
    expect(b.getAttribute(0, COST_USD)).toBeCloseTo(0.09, 12);
    expect(b.getAttribute(1, COST_USD)).toBeUndefined();
  });
  it('many batches with their own dictionaries and region pairs', () => {
    const p = processor(gcp);
    for (let k = 0; k < 3; k++) {
      // codes differ per batch: the class and region maps are rebuilt each time
      const flows: F[] = [
        ...Array.from({ length: k }, () => ({ cls: 'same_zone', tx: 1, src: `asia-east${k}` })),
        { cls: 'cross_region', tx: GiB, src: 'europe-west1', dst: 'us-east1' },
        { cls: 'cross_region', tx: GiB, src: 'europe-west1', dst: 'europe-west4' },
      ];
      const out = costs(p, flows);
      expect(out[k]).toBeCloseTo(0.08, 12);
      expect(out[k + 1]).toBeCloseTo(0.02, 12);
    }
  });
});

// The k8s_metadata extension as cost sees it: whether it is standalone, whether it has listed the nodes,
// their provider, this node's name and record (a real MetadataStore). The informers that fill it in
// production are tested against an API stand-in in test/k8s.
function fakeMetadata(
  provider: () => string | undefined,
  opts: { synced?: boolean; standalone?: boolean; store?: MetadataStore; nodeName?: string } = {},
): Map<string, Extension> {
  const ext: K8sMetadata = {
    store: opts.store ?? new MetadataStore(),
    nodeName: opts.nodeName,
    standalone: opts.standalone ?? false,
    offline: false,
    requestPodLabels: () => undefined,
    synced: () => opts.synced ?? false,
    provider,
    resolve: () => {
      throw new Error('cost does not resolve flows');
    },
  };
  return new Map<string, Extension>([['k8s_metadata', ext]]);
}

describe('cost: the provider from k8s_metadata', () => {
  it('asks at each batch until the nodes say, then prices with that provider', () => {
    let answer: string | undefined;
    let asked = 0;
    const p = processor(
      {},
      fakeMetadata(() => {
        asked++;
        return answer;
      }),
    );
    expect(p.process(batchOf([{ cls: 'cross_zone', tx: GiB }])).column(COST_USD)).toBeUndefined();
    expect(p.process(batchOf([{ cls: 'cross_zone', tx: GiB }])).column(COST_USD)).toBeUndefined();
    answer = 'gcp';
    // GCP cross-zone: 1 GiB × $0.01 at the sender only = $0.01
    expect(costs(p, [{ cls: 'cross_zone', tx: GiB }])[0]).toBeCloseTo(0.01, 12);
    expect(p.activePricing?.provider).toBe('gcp');
    expect(asked).toBe(3);
    // known: not asked again, and a change of mind is ignored
    answer = 'aws';
    expect(costs(p, [{ cls: 'cross_zone', tx: GiB }])[0]).toBeCloseTo(0.01, 12);
    expect(asked).toBe(3);
  });
  it('a configured provider wins over the nodes', () => {
    const p = processor(
      aws,
      fakeMetadata(() => 'azure'),
    );
    // AWS cross-zone: 1 GB × 2 × $0.01 = $0.02 (Azure would be $0)
    expect(costs(p, [{ cls: 'cross_zone', tx: GB }])[0]).toBeCloseTo(0.02, 12);
  });
  it('a provider without a table means none', () => {
    const p = processor(
      {},
      fakeMetadata(() => 'openstack'),
    );
    expect(p.process(batchOf([{ cls: 'internet_egress', tx: GB }])).column(COST_USD)).toBeUndefined();
    expect(p.activePricing).toBeNull();
  });
  it('no provider configured and no k8s_metadata: none', () => {
    const p = processor({});
    expect(p.process(batchOf([{ cls: 'internet_egress', tx: GB }])).column(COST_USD)).toBeUndefined();
    expect(p.activePricing).toBeNull();
  });
  it('declares k8s_metadata as optional', () => {
    expect(costProcessorFactory.optionalExtensions).toEqual(['k8s_metadata']);
    expect(costProcessorFactory.extensions).toBeUndefined();
  });
});

describe('cost: configuration', () => {
  it('{} parses with every default', () => {
    expect(costProcessorConfig.parse({})).toEqual({
      rates: {},
      nat_gateway: { enabled: false, classes: ['internet_egress', 'cloud_api'], exclude_cidrs: [] },
    });
  });

  // Through the real config loader, so the messages are the ones a user reads.
  const problems = costConfigProblems;

  it('accepts a full config', () => {
    expect(
      problems({
        provider: 'aws',
        rates: {
          internet_egress: 0.07,
          cross_region: { europe: { intercontinental: 0.02 } },
          cross_region_pairs: [{ from: 'us-east-1', to: 'eu-west-1', rate: 0.02 }],
        },
        nat_gateway: { enabled: true, classes: ['internet_egress'], exclude_cidrs: ['52.216.0.0/15'] },
      }),
    ).toEqual([]);
  });

  it.each([
    [
      { provider: 'oracle' },
      'processors::cost::provider: "oracle" is not a provider; expected aws, gcp, azure or none',
    ],
    [
      { rates: { interent_egress: 0.1 } },
      'processors::cost::rates::interent_egress: unknown key "interent_egress"',
    ],
    [
      { rates: { internet_egress: -1 } },
      'processors::cost::rates::internet_egress: a rate cannot be negative',
    ],
    [{ rates: { internet_egress: '0.09' } }, 'processors::cost::rates::internet_egress: expected a number'],
    [
      { rates: { cross_region: { atlantis: {} } } },
      'processors::cost::rates::cross_region::atlantis: unknown key',
    ],
    [
      { rates: { cross_region: { asia: { same: 0.1 } } } },
      'processors::cost::rates::cross_region::asia::same: unknown key "same"',
    ],
    [
      {
        rates: {
          cross_region_pairs: [
            { from: 'a', to: 'b', rate: 1 },
            { from: 'a', to: 'b', rate: 2 },
          ],
        },
      },
      'processors::cost::rates::cross_region_pairs::1: the pair a → b is listed twice',
    ],
    [
      { rates: { cross_region_pairs: [{ from: 'a', to: 'b' }] } },
      'processors::cost::rates::cross_region_pairs::0::rate: required',
    ],
    [
      { nat_gateway: { classes: ['same_zone'] } },
      'processors::cost::nat_gateway::classes::0: "same_zone" is not a class that can leave through a NAT gateway',
    ],
    [
      { nat_gateway: { exclude_cidrs: ['52.216.0.0/40'] } },
      'processors::cost::nat_gateway::exclude_cidrs::0: ',
    ],
    [{ nat_gateway: { enable: true } }, 'processors::cost::nat_gateway::enable: unknown key "enable"'],
  ])('%j is rejected, naming the key', (config, expected) => {
    const found = problems(config);
    expect(found.length, found.join('\n')).toBeGreaterThan(0);
    expect(
      found.some((line) => line.includes(expected)),
      found.join('\n'),
    ).toBe(true);
  });
});

describeConformance(costProcessorFactory, {
  config: { provider: 'aws', nat_gateway: { enabled: true, exclude_cidrs: ['10.0.0.0/8'] } },
  sample: () =>
    batchOf([
      { cls: 'cross_region', tx: GB, rx: GB, src: 'us-east-1', dst: 'eu-west-1' },
      { cls: 'internet_egress', tx: GB, dstIp: '1.1.1.1' },
      { tx: 1 },
    ]),
});
