// Which labels flow series carry, chosen per exporter: the granularity gives the Kubernetes labels, a few
// bounded labels are on by default, and `include`/`exclude` add or remove any of the catalogue (as
// OpenTelemetry eBPF Instrumentation's `attributes.select`, https://opentelemetry.io/docs/zero-code/obi/configure/metrics-traces-attributes/,
// except that `include` adds to the defaults instead of replacing them: the granularity already chose).
// One schema, used by the prometheus and otlp exporters under their `labels` key.
import type { Granularity } from '@netmon/core';
import { z } from 'zod';

/** Where a label's value comes from. */
export type LabelSource =
  /** The flow attribute `key`, as it is. */
  | 'attribute'
  /** `dst.domain`, spelt by dnsName, kept for the top N domains by bytes. */
  | 'domain'
  /** The destination address cut to a prefix, for external destinations, kept for the top N by bytes. */
  | 'prefix'
  /** The destination port, for in-cluster destinations of port-carrying protocols. */
  | 'port'
  /** The IANA protocol number. */
  | 'protocol';

/** One label of the catalogue: its Prometheus name, its OTLP attribute key, and when it is on. */
export interface LabelSpec {
  readonly name: string;
  readonly key: string;
  readonly source: LabelSource;
  /** On without `include` at this granularity. */
  readonly base: (g: Granularity) => boolean;
  /** Sent as an int attribute over OTLP (a number in the flow record too). */
  readonly numeric?: boolean;
}

const always = () => true;
const never = () => false;

const end = (e: 'src' | 'dst'): LabelSpec[] => [
  { name: `${e}_namespace`, key: `${e}.k8s.namespace.name`, source: 'attribute', base: always },
  {
    name: `${e}_workload_kind`,
    key: `${e}.k8s.workload.kind`,
    source: 'attribute',
    base: (g) => g !== 'namespace',
  },
  {
    name: `${e}_workload`,
    key: `${e}.k8s.workload.name`,
    source: 'attribute',
    base: (g) => g !== 'namespace',
  },
  { name: `${e}_pod`, key: `${e}.k8s.pod.name`, source: 'attribute', base: (g) => g === 'pod' },
  { name: `${e}_zone`, key: `${e}.cloud.availability_zone`, source: 'attribute', base: always },
  { name: `${e}_region`, key: `${e}.cloud.region`, source: 'attribute', base: never },
];

/**
 * Every label a flow series can carry, in the order series carry them. Prometheus names are the attribute
 * keys with dots as underscores, `k8s.` and `.name` dropped, and `cloud.availability_zone` / `cloud.region`
 * shortened to `zone` / `region`.
 */
export const FLOW_LABEL_CATALOGUE: readonly LabelSpec[] = [
  ...end('src'),
  ...end('dst'),
  { name: 'dst_kind', key: 'dst.kind', source: 'attribute', base: always },
  { name: 'dst_service', key: 'dst.k8s.service.name', source: 'attribute', base: always },
  { name: 'dst_domain', key: 'dst.domain', source: 'domain', base: always },
  { name: 'dst_prefix', key: 'dst.prefix', source: 'prefix', base: always },
  { name: 'dst_port', key: 'dst.port', source: 'port', base: never, numeric: true },
  { name: 'protocol', key: 'protocol', source: 'protocol', base: always, numeric: true },
  { name: 'traffic_class', key: 'traffic.class', source: 'attribute', base: always },
];

const NAMES = FLOW_LABEL_CATALOGUE.map((l) => l.name);

/** The labels an include/exclude entry names: a Prometheus name or attribute key, `*` matching any run. */
export function matchLabels(pattern: string): LabelSpec[] {
  if (!pattern.includes('*'))
    return FLOW_LABEL_CATALOGUE.filter((l) => l.name === pattern || l.key === pattern);
  const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
  return FLOW_LABEL_CATALOGUE.filter((l) => re.test(l.name) || re.test(l.key));
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const labelPattern = z
  .string()
  .min(1)
  .superRefine((p, ctx) => {
    if (matchLabels(p).length > 0) return;
    ctx.addIssue({
      code: 'custom',
      message: `"${p}" names no flow label; expected one of ${NAMES.join(', ')}, or its attribute key (src.cloud.availability_zone, dst.port, …), or a pattern with * (dst_*)`,
    });
  });

const topN = (n: number, what: string) =>
  z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(n)
    .describe(
      `How many ${what} keep their own value: the heaviest by bytes (recent bytes count most: the ranking decays with a half-life of the exporter’s expiration). The rest are summed under the value "other", so totals stay exact. Memory is fixed by it: about 9 × top values are tracked. A value stays at least twice the exporter’s expiration once it is in, and another replaces it only when it sent at least twice as much, so values do not flap; within any expiration at most 2 × top + 1 values have live series.`,
    );

export const flowLabelSelection = z
  .strictObject({
    include: z
      .array(labelPattern)
      .default([])
      .describe(
        'Labels to add to the flow series, beyond the granularity’s and the defaults: by Prometheus name (dst_port, src_region) or attribute key (dst.port), * matching any characters. Off unless included: src_region, dst_region, dst_port, and the pod labels at workload or namespace granularity.',
      ),
    exclude: z
      .array(labelPattern)
      .default([])
      .describe(
        'Labels to remove from the flow series, whether the granularity, the defaults or include put them there (exclude wins). E.g. [dst_prefix] or [src_zone, dst_zone].',
      ),
    dst_domain: z
      .strictObject({ top: topN(50, 'destination domains') })
      .prefault({})
      .describe(
        'dst_domain (attribute dst.domain): the destination’s DNS name, lower case, no trailing dot.',
      ),
    dst_prefix: z
      .strictObject({
        top: topN(20, 'destination prefixes'),
        ipv4_prefix_length: z
          .number()
          .int()
          .min(1)
          .max(32)
          .default(24)
          .describe('Bits of an IPv4 destination kept (24: 203.0.113.0/24; 32: one address).'),
        ipv6_prefix_length: z
          .number()
          .int()
          .min(1)
          .max(128)
          .default(64)
          .describe(
            'Bits of an IPv6 destination kept (64: one subnet, where a host’s addresses rotate; 128: one address).',
          ),
        with_domain: z
          .boolean()
          .default(false)
          .describe(
            'Also give dst_prefix to flows whose destination has a dst_domain. Off: the prefix names only destinations without a name, so the two labels add their values instead of multiplying them.',
          ),
      })
      .prefault({})
      .describe(
        'dst_prefix (attribute dst.prefix): the network of an external destination (dst.kind external_public or external_private) in CIDR notation, or "other".',
      ),
    dns_question: z
      .strictObject({
        top: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(100)
          .describe(
            'How many DNS question names keep their own value: the most looked up (recent lookups count most: the ranking decays with a half-life of the exporter’s expiration). The rest are counted under the value "other", so totals stay exact, and random subdomains (a DNS tunnel, a resolver probing) make one series, not one per name. Memory is fixed by it: about 9 × top names are tracked. A name stays at least twice the exporter’s expiration once it is in, and another replaces it only when it was looked up at least twice as often, so names do not flap; within any expiration at most 2 × top + 1 names have live series.',
          ),
      })
      .prefault({})
      .describe(
        'The question of the DNS lookup series (dns pipelines): prometheus dst_domain of netmon_dns_lookups_total and netmon_dns_lookup_duration_seconds, otlp dns.question.name; lower case, no trailing dot.',
      ),
  })
  .prefault({})
  .describe(
    'Which labels flow series carry. The granularity chooses the Kubernetes ones; on by default besides: src_zone, dst_zone, protocol, dst_domain and dst_prefix (each a top N); include and exclude change that. dns_question bounds the question names of the DNS lookup series.',
  );

export type FlowLabelSelection = z.output<typeof flowLabelSelection>;

/** The selection when the config says nothing. */
export const DEFAULT_FLOW_LABEL_SELECTION: FlowLabelSelection = flowLabelSelection.parse(undefined);

/** The catalogue's labels a granularity and a selection give, in catalogue order. */
export function selectedLabels(granularity: Granularity, selection: FlowLabelSelection): LabelSpec[] {
  const included = new Set(selection.include.flatMap(matchLabels));
  const excluded = new Set(selection.exclude.flatMap(matchLabels));
  return FLOW_LABEL_CATALOGUE.filter((l) => (l.base(granularity) || included.has(l)) && !excluded.has(l));
}
