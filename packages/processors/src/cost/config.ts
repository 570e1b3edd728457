import { cidr } from '@netmon/core';
import { z } from 'zod';
import type { TrafficClass } from '../classify/classes.js';
import { CONTINENTS, type Continent, PROVIDERS, type Provider } from './rates.js';
import { isRegionName, isZoneOf, REGION_EXAMPLES, regionKey } from './regions.js';

/**
 * Classes whose connections can leave through a NAT gateway: opened by our side towards something
 * outside the VPC. Never traffic inside the VPC, answers to inbound connections, or private endpoints.
 * Within these classes the processor still skips, per flow, connections opened from outside and
 * platform addresses (cost.ts NAT_BYPASS_PLATFORM): the class can come from either end of a flow.
 */
export const NAT_CLASSES = [
  'internet_egress',
  'cloud_api',
  'k8s_control_plane',
  'cross_region',
  'load_balancer',
  'external_private',
] as const satisfies readonly TrafficClass[];

const rate = (meaning: string) =>
  z
    .number({ error: 'expected a number: USD per GB (aws, azure) or per GiB (gcp)' })
    .min(0, 'a rate cannot be negative')
    .optional()
    .describe(meaning);

const pairRates = z
  .strictObject({
    same_continent: rate('Egress per unit from a region on this continent to another region on it.'),
    intercontinental: rate('Egress per unit from a region on this continent to one on another continent.'),
  })
  .optional();

const crossRegion = z
  .strictObject(
    Object.fromEntries(CONTINENTS.map((c) => [c, pairRates])) as Record<Continent, typeof pairRates>,
  )
  .optional()
  .describe(
    `Inter-region egress by the sender's continent (${CONTINENTS.join(', ')}), each with same_continent and intercontinental.`,
  );

const crossRegionPairs = z
  .array(
    z.strictObject({
      from: z.string().min(1, 'from must name a region').describe('Region the bytes leave (the sender).'),
      to: z.string().min(1, 'to must name a region').describe('Region the bytes arrive in.'),
      rate: z
        .number({
          error: (issue) =>
            issue.input === undefined
              ? 'required: the price per unit sent from `from` to `to`'
              : 'expected a number: USD per GB (aws, azure) or per GiB (gcp)',
        })
        .min(0, 'a rate cannot be negative')
        .describe('Egress per unit sent from `from` to `to`.'),
    }),
  )
  .superRefine((pairs, ctx) => {
    const seen = new Set<string>();
    pairs.forEach((p, i) => {
      const key = `${p.from}\u0000${p.to}`;
      if (seen.has(key))
        ctx.addIssue({ code: 'custom', path: [i], message: `the pair ${p.from} → ${p.to} is listed twice` });
      seen.add(key);
    });
  })
  .optional()
  .describe(
    'Exact (from, to) region pairs, one direction each, checked before the continent rule: list both directions for a symmetric price.',
  );

/** A partial override of the provider's rate table (rates.ts): every key optional, unknown keys rejected. */
export const ratesOverride = z
  .strictObject({
    cross_zone_egress: rate('Cross-zone, charged at the sending end, per unit that crosses.'),
    cross_zone_ingress: rate('Cross-zone, charged at the receiving end, per unit that crosses.'),
    cross_region: crossRegion,
    cross_region_default: rate('Inter-region egress per unit when a region or its continent is unknown.'),
    cross_region_pairs: crossRegionPairs,
    internet_egress: rate(
      'Blended internet egress per unit our side sends out (inbound is free), for every region without its own figure in internet_egress_by_region. Setting it drops the shipped per-region figures: a blended rate from your bill is one number.',
    ),
    internet_egress_by_region: z
      .record(
        z.string().min(1, 'a region name'),
        z
          .number({ error: 'expected a number: USD per GB (aws, azure) or per GiB (gcp)' })
          .min(0, 'a rate cannot be negative'),
      )
      .optional()
      .describe(
        "Internet egress per unit sent out from these regions (the sender's region: our end's), by region name (without case); other regions pay internet_egress. Added to the shipped figures (aws: ap-southeast-2).",
      ),
    private_link: rate('Private endpoint processing per unit, either direction.'),
    cloud_api: rate('Per unit to or from the cloud’s service endpoints, either direction.'),
    k8s_control_plane: rate('Per unit to or from the managed control plane, either direction.'),
    load_balancer: rate('Load balancer processing per unit, either direction.'),
    external_private: rate('Per unit to or from private addresses outside the cluster, either direction.'),
    nat_gateway: rate('NAT gateway processing per unit, either direction, on top of transfer.'),
  })
  .prefault({});

const natClass = z.enum(NAT_CLASSES, {
  error: (issue) =>
    `${JSON.stringify(issue.input)} is not a class that can leave through a NAT gateway; expected one of: ${NAT_CLASSES.join(', ')}`,
});

/** `${env:X:-}` gives '': an empty value is an unset key, so a config can leave it to the environment. */
const unsetWhenEmpty = (v: unknown) => (v === '' ? undefined : v);

const placeName = (what: string) =>
  z.preprocess(
    unsetWhenEmpty,
    z
      .string({ error: `expected a ${what} name` })
      .trim()
      .min(1, `expected a ${what} name`)
      .optional(),
  );

export const costProcessorConfig = z
  .strictObject({
    provider: z
      .preprocess(
        unsetWhenEmpty,
        z
          .enum([...PROVIDERS, 'none'], {
            error: (issue) =>
              `${JSON.stringify(issue.input)} is not a provider; expected aws, gcp, azure or none`,
          })
          .optional(),
      )
      .describe(
        "Whose price list applies: aws, gcp, azure or none (no cost.usd at all). Unset or empty: the k8s_metadata extension's most common node provider (nodes' spec.providerID), asked at each batch until it knows. Without that extension, or when it runs standalone, or when the nodes name no provider, flows stay unpriced and the log and /status say to set this key.",
      ),
    region: placeName('region').describe(
      "The region this host is in (e.g. us-east-1, us-central1, eastus), for the ends on this host that k8s_metadata cannot place (no extension, standalone, or a node without topology.kubernetes.io/region): internet traffic and cross-region traffic from them are priced at this region's rates, and the region is written to their *.cloud.region. Checked against the provider's region names when provider is set. Unset or empty: such ends have no region (list prices of the provider's default region).",
    ),
    zone: placeName('zone').describe(
      'The zone this host is in (e.g. us-east-1a), written to *.cloud.availability_zone of the ends this processor places in `region`. Needs region; checked to be one of its zones when provider is set.',
    ),
    rates: ratesOverride.describe(
      "Overrides of the provider's list prices, in its unit (USD per GB for aws and azure, per GiB for gcp). Keys left out keep the shipped figure.",
    ),
    nat_gateway: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'Connections of `classes` that our side opens leave through a NAT gateway: add its processing charge (both directions). Never on connections opened from outside, nor to link-local addresses and the platform addresses of the cloud in use (instance metadata; 168.63.129.16 on Azure).',
          ),
        classes: z
          .array(natClass)
          .min(1, 'name at least one class, or set enabled: false')
          .default(['internet_egress', 'cloud_api'])
          .describe('Traffic classes that take the NAT path.'),
        exclude_cidrs: z
          .array(cidr())
          .default([])
          .describe(
            'Remote ends reached without the NAT (e.g. the S3/DynamoDB gateway-endpoint prefix lists, a peered range), matched on the address our side dialled and, after DNAT, on the one it reached.',
          ),
      })
      .prefault({})
      .describe('A NAT gateway on the egress path, priced on top of transfer.'),
  })
  .superRefine((config, ctx) => {
    const provider = config.provider === 'none' ? undefined : config.provider;
    if (config.zone !== undefined && config.region === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['zone'],
        message: `set region too: a zone alone does not say whose prices apply (zone ${JSON.stringify(config.zone)})`,
      });
    }
    if (provider === undefined) return;
    if (config.region !== undefined && !isRegionName(provider, config.region)) {
      ctx.addIssue({ code: 'custom', path: ['region'], message: notARegion(provider, config.region) });
    } else if (
      config.region !== undefined &&
      config.zone !== undefined &&
      !isZoneOf(provider, config.zone, config.region)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['zone'],
        message: `${JSON.stringify(config.zone)} is not a zone of ${provider} region ${config.region} (${ZONE_EXAMPLES[provider]})`,
      });
    }
    const byRegion = config.rates.internet_egress_by_region ?? {};
    const seen = new Map<string, string>();
    for (const name of Object.keys(byRegion)) {
      const path = ['rates', 'internet_egress_by_region', name];
      if (!isRegionName(provider, name))
        ctx.addIssue({ code: 'custom', path, message: notARegion(provider, name) });
      const key = regionKey(provider, name);
      const first = seen.get(key);
      if (first !== undefined)
        ctx.addIssue({ code: 'custom', path, message: `the same region as ${JSON.stringify(first)}` });
      seen.set(key, name);
    }
  });

const ZONE_SAMPLE: Readonly<Record<Provider, string>> = {
  aws: 'us-east-1a',
  gcp: 'us-central1-a',
  azure: 'eastus-1',
};

const ZONE_EXAMPLES: Readonly<Record<Provider, string>> = {
  aws: 'its zones are named like us-east-1a',
  gcp: 'its zones are named like us-central1-a',
  azure: 'zones are 1, 2, 3 or named like eastus-1',
};

function notARegion(provider: Provider, name: string): string {
  return `${JSON.stringify(name)} is not a region name of ${provider} (expected one like ${REGION_EXAMPLES[provider]}; a zone such as ${ZONE_SAMPLE[provider]} is not a region)`;
}

export type CostProcessorConfig = z.output<typeof costProcessorConfig>;
export type RatesOverride = z.output<typeof ratesOverride>;
