import { cidr } from '@netmon/core';
import { z } from 'zod';
import type { TrafficClass } from '../classify/classes.js';
import { CONTINENTS, type Continent, PROVIDERS } from './rates.js';

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
    internet_egress: rate('Blended internet egress per unit our side sends out (inbound is free).'),
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

export const costProcessorConfig = z.strictObject({
  provider: z
    .enum([...PROVIDERS, 'none'], {
      error: (issue) => `${JSON.stringify(issue.input)} is not a provider; expected aws, gcp, azure or none`,
    })
    .optional()
    .describe(
      "Whose price list applies. Unset: the k8s_metadata extension's most common node provider (nodes' spec.providerID), asked at each batch until it knows; none when that extension is not enabled or the provider has no table. none: no cost.usd at all.",
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
          'Connections of `classes` that our side opens leave through a NAT gateway: add its processing charge (both directions). Never on connections opened from outside, nor to link-local and platform addresses (instance metadata, 168.63.129.16).',
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
});

export type CostProcessorConfig = z.output<typeof costProcessorConfig>;
export type RatesOverride = z.output<typeof ratesOverride>;
