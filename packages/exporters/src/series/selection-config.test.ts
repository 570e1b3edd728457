import { FlowBatch, FlowFlags, type FlowInit } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { FlowSeries, flowLabels, RX_BYTES, TX_BYTES } from './flow-series.js';
import {
  DEFAULT_FLOW_LABEL_SELECTION,
  flowLabelSelection,
  matchLabels,
  selectedLabels,
} from './selection-config.js';

const sel = (s: Record<string, unknown>) => flowLabelSelection.parse(s);
const names = (g: 'pod' | 'workload' | 'namespace', s: Record<string, unknown> = {}) =>
  selectedLabels(g, sel(s)).map((l) => l.name);

describe('flowLabelSelection', () => {
  it('defaults: nothing included or excluded; top 50 domains, top 20 prefixes of /24 and /64, top 100 DNS questions', () => {
    expect(DEFAULT_FLOW_LABEL_SELECTION).toEqual({
      include: [],
      exclude: [],
      dst_domain: { top: 50 },
      dst_prefix: { top: 20, ipv4_prefix_length: 24, ipv6_prefix_length: 64, with_domain: false },
      dns_question: { top: 100 },
    });
    expect(flowLabelSelection.parse({})).toEqual(DEFAULT_FLOW_LABEL_SELECTION);
  });

  it('names a label by Prometheus name, attribute key or a * pattern; exclude wins over include', () => {
    expect(matchLabels('dst_zone').map((l) => l.key)).toEqual(['dst.cloud.availability_zone']);
    expect(matchLabels('dst.cloud.availability_zone').map((l) => l.name)).toEqual(['dst_zone']);
    expect(matchLabels('*_zone').map((l) => l.name)).toEqual(['src_zone', 'dst_zone']);
    expect(matchLabels('dst.k8s.*').map((l) => l.name)).toEqual([
      'dst_namespace',
      'dst_workload_kind',
      'dst_workload',
      'dst_pod',
      'dst_service',
    ]);
    expect(
      names('workload', {
        include: ['dst_port', 'dst.k8s.pod.name'],
        exclude: ['dst_service', 'dst.prefix'],
      }),
    ).toEqual([
      'src_namespace',
      'src_workload_kind',
      'src_workload',
      'src_zone',
      'dst_namespace',
      'dst_workload_kind',
      'dst_workload',
      'dst_pod',
      'dst_zone',
      'dst_kind',
      'dst_domain',
      'dst_port',
      'protocol',
      'traffic_class',
    ]);
    expect(names('namespace', { include: ['*_region'], exclude: ['src_region'] })).toContain('dst_region');
    expect(names('namespace', { include: ['*_region'], exclude: ['src_region'] })).not.toContain(
      'src_region',
    );
  });

  it('refuses names of no label, saying what it expected, and unknown keys', () => {
    const r = flowLabelSelection.safeParse({ include: ['dst_ip'], exclude: ['nope*'] });
    expect(r.success).toBe(false);
    const issues = r.error?.issues ?? [];
    expect(issues.map((i) => i.path.join('.'))).toEqual(['include.0', 'exclude.0']);
    expect(issues[0].message).toMatch(
      /^"dst_ip" names no flow label; expected one of src_namespace, .*dst_prefix, dst_port, protocol, traffic_class/,
    );
    for (const bad of [
      { dst_prefix: { top: 0 } },
      { dst_prefix: { ipv4_prefix_length: 33 } },
      { dst_domain: { top: 10_001 } },
      { dns_question: { top: 0 } },
      { dns_question: { top: 2.5 } },
      { dns_question: { named: 3 } },
      { select: ['dst_zone'] },
    ]) {
      expect(flowLabelSelection.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

const T0 = Date.parse('2026-01-01T00:00:00Z');

const WEB = {
  'src.k8s.namespace.name': 'shop',
  'src.k8s.workload.kind': 'Deployment',
  'src.k8s.workload.name': 'web',
  'src.k8s.pod.name': 'web-7c9d8-x2k8p',
  'src.cloud.availability_zone': 'eu-west-1a',
  'src.cloud.region': 'eu-west-1',
};

function flow(
  protocol: number,
  dstIp: string,
  dstPort: number,
  tx: number,
  attributes: FlowInit['attributes'],
  flags: number = FlowFlags.InitiatorKnown,
): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol,
    srcIp: '10.0.1.5',
    srcPort: 40000,
    dstIp,
    dstPort,
    txBytes: tx,
    rxBytes: 2 * tx,
    txPackets: 1,
    rxPackets: 1,
    flags,
    attributes: { ...WEB, ...attributes },
  };
}

const DB = {
  'dst.kind': 'pod',
  'dst.k8s.namespace.name': 'shop',
  'dst.k8s.workload.kind': 'StatefulSet',
  'dst.k8s.workload.name': 'db',
  'dst.k8s.pod.name': 'db-0',
  'dst.cloud.availability_zone': 'eu-west-1b',
  'traffic.class': 'cross_zone',
};

/** The batch every case below sums: in-cluster and external destinations, TCP, UDP, ICMP. */
const mixed = () =>
  FlowBatch.from([
    flow(6, '10.0.2.9', 5432, 100, DB),
    flow(6, '10.0.2.9', 5432, 50, DB),
    // The receiver knew only local and remote ends: 40001 may be the remote's ephemeral port.
    flow(6, '10.0.2.9', 40001, 7, DB, FlowFlags.LocalRemote),
    // ICMP has no ports (conntrack's id/type is no port).
    flow(1, '10.0.2.9', 8, 3, DB),
    flow(17, '10.96.0.10', 53, 20, {
      'dst.kind': 'service',
      'dst.k8s.namespace.name': 'kube-system',
      'dst.k8s.service.name': 'kube-dns',
      'traffic.class': 'same_zone',
    }),
    flow(6, '203.0.113.7', 443, 1000, {
      'dst.kind': 'external_public',
      'dst.domain': 'API.Stripe.com.',
      'traffic.class': 'internet_egress',
    }),
    flow(6, '198.51.100.9', 443, 400, { 'dst.kind': 'external_public', 'traffic.class': 'internet_egress' }),
    flow(6, '198.51.100.200', 8443, 600, {
      'dst.kind': 'external_public',
      'traffic.class': 'internet_egress',
    }),
  ]);

/** Sum of a column per label set, as `name=value,…` (empty labels left out), read back from the table. */
function sums(series: FlowSeries, column: number): Record<string, number> {
  const t = series.table;
  const out: Record<string, number> = {};
  for (let s = 0; s < t.size; s++) {
    const key = series.labels
      .map((l, i) => `${l.name}=${t.label(s, i)}`)
      .filter((x) => !x.endsWith('='))
      .join(',');
    out[key] = (out[key] ?? 0) + t.values[column][s];
  }
  return out;
}

describe('flow series with a label selection', () => {
  it('defaults at workload: zones, protocol, domain; the prefix names only external destinations without a domain', () => {
    const series = new FlowSeries(flowLabels('workload'), 100);
    series.add(mixed(), T0);
    const web = 'src_namespace=shop,src_workload_kind=Deployment,src_workload=web,src_zone=eu-west-1a';
    const db =
      'dst_namespace=shop,dst_workload_kind=StatefulSet,dst_workload=db,dst_zone=eu-west-1b,dst_kind=pod';
    expect(sums(series, TX_BYTES)).toEqual({
      [`${web},${db},protocol=6,traffic_class=cross_zone`]: 157,
      [`${web},${db},protocol=1,traffic_class=cross_zone`]: 3,
      [`${web},dst_namespace=kube-system,dst_kind=service,dst_service=kube-dns,protocol=17,traffic_class=same_zone`]: 20,
      [`${web},dst_kind=external_public,dst_domain=api.stripe.com,protocol=6,traffic_class=internet_egress`]: 1000,
      [`${web},dst_kind=external_public,dst_prefix=198.51.100.0/24,protocol=6,traffic_class=internet_egress`]: 1000,
    });
    expect(sums(series, RX_BYTES)[`${web},${db},protocol=6,traffic_class=cross_zone`]).toBe(314);
  });

  it('include dst_port and src_region, exclude zones, workload kinds and dst_service: ports only where they are a listener’s', () => {
    const series = new FlowSeries(
      flowLabels(
        'workload',
        sel({
          include: ['dst_port', 'src.cloud.region'],
          exclude: ['*_zone', '*_workload_kind', 'dst_service', 'traffic_class'],
        }),
      ),
      100,
    );
    series.add(mixed(), T0);
    expect(sums(series, TX_BYTES)).toEqual({
      'src_namespace=shop,src_workload=web,src_region=eu-west-1,dst_namespace=shop,dst_workload=db,dst_kind=pod,dst_port=5432,protocol=6': 150,
      'src_namespace=shop,src_workload=web,src_region=eu-west-1,dst_namespace=shop,dst_workload=db,dst_kind=pod,protocol=6': 7,
      'src_namespace=shop,src_workload=web,src_region=eu-west-1,dst_namespace=shop,dst_workload=db,dst_kind=pod,protocol=1': 3,
      'src_namespace=shop,src_workload=web,src_region=eu-west-1,dst_namespace=kube-system,dst_kind=service,dst_port=53,protocol=17': 20,
      'src_namespace=shop,src_workload=web,src_region=eu-west-1,dst_kind=external_public,dst_domain=api.stripe.com,protocol=6': 1000,
      // External: no port (8443 and 443 are one prefix's), the prefix names them.
      'src_namespace=shop,src_workload=web,src_region=eu-west-1,dst_kind=external_public,dst_prefix=198.51.100.0/24,protocol=6': 1000,
    });
  });

  it('with_domain gives named destinations their prefix too; /32 keeps addresses; without dst_domain every external row has one', () => {
    const only = {
      exclude: [
        'src_*',
        'dst_namespace',
        'dst_workload*',
        'dst_zone',
        'dst_service',
        'protocol',
        'traffic_class',
      ],
    };
    const withDomain = new FlowSeries(
      flowLabels('workload', sel({ ...only, dst_prefix: { with_domain: true, ipv4_prefix_length: 32 } })),
      100,
    );
    withDomain.add(mixed(), T0);
    expect(sums(withDomain, TX_BYTES)).toEqual({
      'dst_kind=pod': 160,
      'dst_kind=service': 20,
      'dst_kind=external_public,dst_domain=api.stripe.com,dst_prefix=203.0.113.7/32': 1000,
      'dst_kind=external_public,dst_prefix=198.51.100.9/32': 400,
      'dst_kind=external_public,dst_prefix=198.51.100.200/32': 600,
    });
    const noDomain = new FlowSeries(
      flowLabels('workload', sel({ exclude: [...only.exclude, 'dst_domain'] })),
      100,
    );
    noDomain.add(mixed(), T0);
    expect(sums(noDomain, TX_BYTES)).toEqual({
      'dst_kind=pod': 160,
      'dst_kind=service': 20,
      'dst_kind=external_public,dst_prefix=203.0.113.0/24': 1000,
      'dst_kind=external_public,dst_prefix=198.51.100.0/24': 1000,
    });
  });

  it('dst_domain keeps the top N domains (one per spelling-insensitive name), the rest under "other", totals exact', () => {
    const series = new FlowSeries(
      flowLabels(
        'namespace',
        sel({
          exclude: ['*_namespace', '*_zone', 'dst_kind', 'protocol', 'traffic_class'],
          dst_domain: { top: 2 },
        }),
      ),
      100,
    );
    const to = (domain: string, tx: number) =>
      flow(6, '203.0.113.7', 443, tx, { 'dst.kind': 'external_public', 'dst.domain': domain });
    series.add(
      FlowBatch.from([
        to('a.example.com', 1),
        to('A.EXAMPLE.COM.', 2),
        to('b.example.com', 4),
        to('c.example.com', 8),
        to('d.example.com', 16),
        flow(6, '10.0.2.9', 5432, 32, DB),
      ]),
      T0,
    );
    expect(sums(series, TX_BYTES)).toEqual({
      'dst_domain=a.example.com': 3,
      'dst_domain=b.example.com': 4,
      'dst_domain=other': 24,
      '': 32,
    });
  });
});
