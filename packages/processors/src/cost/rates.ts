// The list prices the cost processor starts from: one table per cloud, plain data. Each figure names its
// public source in `source` (the cloud's pricing page, or the public article that quotes it); `estimates`
// names the figures no cited source states, with why they were chosen. Config `rates` overrides any of
// them per cluster. Verify against the live pricing pages before relying on a figure: list prices change,
// and they are US-region prices unless a source or `internet_egress_by_region` says otherwise.

export const PROVIDERS = ['aws', 'gcp', 'azure'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Continents as the clouds group regions for inter-region pricing. */
export const CONTINENTS = [
  'north_america',
  'south_america',
  'europe',
  'asia',
  'oceania',
  'middle_east',
  'africa',
] as const;
export type Continent = (typeof CONTINENTS)[number];

/** Egress price of one unit sent from a region on `continent` to another region. */
export interface PairRates {
  /** …to a region on the same continent. */
  same_continent: number;
  /** …to a region on another continent. */
  intercontinental: number;
}

export interface CrossRegionPair {
  /** Region the bytes leave (the sender's). */
  from: string;
  /** Region the bytes arrive in. */
  to: string;
  /** Price per unit sent from `from` to `to`. */
  rate: number;
}

/** Prices in USD per unit (the table's `unit`: GB = 1e9 bytes, GiB = 2^30 bytes). */
export interface Rates {
  /** Cross-zone, charged at the sending end, per unit that crosses. */
  cross_zone_egress: number;
  /** Cross-zone, charged at the receiving end, per unit that crosses. */
  cross_zone_ingress: number;
  /** Inter-region egress by the sender's continent. */
  cross_region: Record<Continent, PairRates>;
  /** Inter-region egress when a region (or its continent) is unknown. */
  cross_region_default: number;
  /** Exact region pairs, before the continent rule (none shipped; config adds them). */
  cross_region_pairs: CrossRegionPair[];
  /** Internet egress, blended: applies to the bytes our side sends out; inbound is free. */
  internet_egress: number;
  /**
   * Internet egress from these regions, where it differs from `internet_egress` (which then applies to
   * every other region, and to flows whose region is unknown). Keys are region names, without case.
   */
  internet_egress_by_region: Record<string, number>;
  /** Private endpoint data processing, per unit processed in either direction. */
  private_link: number;
  /** Traffic to the cloud's own service endpoints, per unit in either direction. */
  cloud_api: number;
  /** Traffic to the managed Kubernetes control plane, per unit in either direction. */
  k8s_control_plane: number;
  /** Load balancer data processing, per unit in either direction. */
  load_balancer: number;
  /** Private addresses outside the cluster (VPN, peering, on-prem), per unit in either direction. */
  external_private: number;
  /** NAT gateway data processing, per unit in either direction, on top of transfer (path surcharge). */
  nat_gateway: number;
}

export type RateKey = keyof Rates;

export interface RateTable {
  provider: Provider;
  unit: 'GB' | 'GiB';
  /** When the figures were compiled from their sources. */
  as_of: string;
  /** Where each figure comes from. */
  source: Record<RateKey, string>;
  /** Figures that no cited source states: defaults to verify, with why they were chosen. */
  estimates: Partial<Record<RateKey, string>>;
  rates: Rates;
}

export const UNIT_BYTES = { GB: 1e9, GiB: 2 ** 30 } as const;

const uniform = (r: number): PairRates => ({ same_continent: r, intercontinental: r });

const SAME_REGION_SERVICES =
  'assumed $0: same-region traffic to the cloud’s service / control-plane endpoints is neither transfer between zones nor internet egress: on AWS, data between ECR and other services in the same region is free (aws.amazon.com/blogs/containers/understanding-data-transfer-costs-for-aws-container-services), reaching the public endpoint of a service in the same region through an internet gateway carries no transfer charge (aws.amazon.com/blogs/architecture/overview-of-data-transfer-costs-for-common-architectures), and gateway endpoints for S3/DynamoDB are free (awsnegotiations.com). A NAT gateway on the path is priced by nat_gateway.';

const EXTERNAL_PRIVATE =
  'DevZero’s public cost model prices "External Private" as free (a conservative estimate; devzero.io/docs/k8s-automation/network-monitoring/cost-model)';

export const AWS: RateTable = {
  provider: 'aws',
  unit: 'GB',
  as_of: '2026-11-21',
  source: {
    cross_zone_egress:
      '$0.01/GB in each direction, "charged at each end" (aws.amazon.com/ec2/pricing/on-demand as quoted by usage.ai, finopsforge.com)',
    cross_zone_ingress: 'as cross_zone_egress: the receiving end pays $0.01/GB too',
    cross_region:
      '"$0.02–$0.08/GB by pair" (finopsforge.com), $0.02–0.09 (docs.xplorr.io); $0.02 typical from US regions; AWS prices by the source region',
    cross_region_default: 'the typical US/EU figure, $0.02/GB (finopsforge.com)',
    cross_region_pairs: 'none shipped',
    internet_egress:
      'us-east first paid tier: first 100 GB/month free, $0.09 to 10 TB, $0.085 next 40 TB, $0.07 next 100 TB, $0.05 beyond (usage.ai; egresscost.com/aws); the price of every region whose own figure is not in internet_egress_by_region',
    internet_egress_by_region:
      'ap-southeast-2 (Sydney): $0.114/GB for the first paid tier (next 9.999 TB/month), then $0.098, $0.094, $0.092 (chengqing.dev/en/2020/01/23/aws-data-transfer, quoting aws.amazon.com/ec2/pricing/on-demand); AWS bills internet egress by the source region (aws.amazon.com/about-aws/global-infrastructure/global-network/faqs)',
    private_link:
      'interface endpoint: $0.01/GB first 1 PB, $0.006 next 4 PB, $0.004 beyond, "for each Gigabyte processed through the VPC endpoint regardless of the traffic’s source or destination" (aws.amazon.com/privatelink/pricing) + $0.01/h per endpoint per AZ (not priced per flow)',
    cloud_api: SAME_REGION_SERVICES,
    k8s_control_plane: SAME_REGION_SERVICES,
    load_balancer: 'ALB/NLB ~$0.008/GB processed (egresscost.com)',
    external_private: EXTERNAL_PRIVATE,
    nat_gateway:
      '$0.045/GB processed + $0.045/h per gateway (egresscost.com; finopsforge.com); +$0.01/GB when the gateway is in another AZ (agentbeck.bot)',
  },
  estimates: {
    cross_region:
      'the cited sources give a $0.02–$0.08 range, not per-region figures: $0.02 for sources in North America and Europe, $0.08 (the top of the range) for all others; some source regions list higher (xplorr.io: up to $0.09).',
  },
  rates: {
    cross_zone_egress: 0.01,
    cross_zone_ingress: 0.01,
    cross_region: {
      north_america: uniform(0.02),
      europe: uniform(0.02),
      south_america: uniform(0.08),
      asia: uniform(0.08),
      oceania: uniform(0.08),
      middle_east: uniform(0.08),
      africa: uniform(0.08),
    },
    cross_region_default: 0.02,
    cross_region_pairs: [],
    internet_egress: 0.09,
    internet_egress_by_region: { 'ap-southeast-2': 0.114 },
    private_link: 0.01,
    cloud_api: 0,
    k8s_control_plane: 0,
    load_balancer: 0.008,
    external_private: 0,
    nat_gateway: 0.045,
  },
};

export const GCP: RateTable = {
  provider: 'gcp',
  unit: 'GiB',
  as_of: '2026-11-21',
  source: {
    cross_zone_egress:
      '$0.01/GiB egress at the sender (cloudwebschool.com; brainagents.ai GCP egress guide; coroot/cloud-pricing hard-codes 0 in / 0.01 out; cloud.google.com/vpc/pricing)',
    cross_zone_ingress: 'ingress is free: the receiving zone pays nothing',
    cross_region:
      '~$0.01–0.02/GiB same continent, ~$0.02–0.08+ intercontinental (brainagents.ai; cloudwebschool.com "~$0.01–0.08"); same continent takes the top of the $0.01–0.02 range, so a pair billed $0.01 is over-counted; intercontinental takes $0.08, which some pairs exceed (see estimates)',
    cross_region_default: 'the same-continent figure, $0.02/GiB',
    cross_region_pairs: 'none shipped',
    internet_egress:
      'Premium tier, first TiB: ~$0.085–0.12/GiB by source and destination continent, falling to ~$0.045–0.08 at 10 TiB+; Standard tier ~$0.04–0.085 (brainagents.ai; cloudtoolstack.com; cloud.google.com/network-tiers/pricing)',
    internet_egress_by_region:
      'none shipped: Premium-tier prices depend on the destination continent too, which a flow does not tell (cloud.google.com/network-tiers/pricing); set your region’s figure in rates.internet_egress_by_region',
    private_link:
      'Private Service Connect bills endpoint-hours + per-GiB data processing (cloudcostkit.com model); no cited source states the rate — verify at cloud.google.com/vpc/pricing',
    cloud_api: SAME_REGION_SERVICES,
    k8s_control_plane: SAME_REGION_SERVICES,
    load_balancer: 'forwarding rules + data processed: no figure taken from a source yet',
    external_private: EXTERNAL_PRIVATE,
    nat_gateway:
      '$0.045/GiB processed, both directions, all regions + $0.0014/VM-h (cap $0.044/h) + $0.005/h per NAT IP (cloud.google.com/nat/pricing)',
  },
  estimates: {
    cross_region:
      'the cited sources give ranges: $0.02 (the top of the $0.01–0.02 same-continent range) and $0.08 (intercontinental) for every source continent; Oceania and some pairs list higher ("0.08+").',
    private_link:
      'no cited figure; $0.01/GiB per direction, like AWS and Azure private endpoints — an estimate to verify.',
    load_balancer: 'no figure taken from a source: $0 until configured.',
  },
  rates: {
    cross_zone_egress: 0.01,
    cross_zone_ingress: 0,
    cross_region: {
      north_america: { same_continent: 0.02, intercontinental: 0.08 },
      south_america: { same_continent: 0.02, intercontinental: 0.08 },
      europe: { same_continent: 0.02, intercontinental: 0.08 },
      asia: { same_continent: 0.02, intercontinental: 0.08 },
      oceania: { same_continent: 0.02, intercontinental: 0.08 },
      middle_east: { same_continent: 0.02, intercontinental: 0.08 },
      africa: { same_continent: 0.02, intercontinental: 0.08 },
    },
    cross_region_default: 0.02,
    cross_region_pairs: [],
    internet_egress: 0.12,
    internet_egress_by_region: {},
    private_link: 0.01,
    cloud_api: 0,
    k8s_control_plane: 0,
    load_balancer: 0,
    external_private: 0,
    nat_gateway: 0.045,
  },
};

export const AZURE: RateTable = {
  provider: 'azure',
  unit: 'GB',
  as_of: '2026-11-21',
  source: {
    cross_zone_egress:
      '$0: "data transfer across AZs is free" (ryanroyals.cloud; adammazouz.com 2023; azure-calc-uk "free since 2023"; blog.vjirovsky.cz Build-2024 note). VNet peering is not free: $0.01/GB in and out (adammazouz.com)',
    cross_zone_ingress: 'as cross_zone_egress',
    cross_region:
      '$0.02/GB within North America or Europe, $0.08 Asia/MEA, $0.16 South America (lucidity.cloud Azure egress guide); no cited source gives an intercontinental rate, so the $0.05 from North America / Europe is an estimate (see estimates)',
    cross_region_default: 'the North America / Europe figure, $0.02/GB',
    cross_region_pairs: 'none shipped',
    internet_egress:
      'first 100 GB/month free, ~$0.087/GB next 10 TB (oneuptime.com Azure guide; cloudtoolstack.com); $0.05–$0.181/GB by region and tier (lucidity.cloud)',
    internet_egress_by_region:
      'none shipped: the cited sources give the $0.05–$0.181/GB span, not per-region figures (azure.microsoft.com/pricing/details/bandwidth lists them); set your region’s figure in rates.internet_egress_by_region',
    private_link:
      '$0.01/GB inbound + $0.01/GB outbound processed + $0.01/h per endpoint (c3x.dev azurerm_private_endpoint; oneuptime.com)',
    cloud_api: SAME_REGION_SERVICES,
    k8s_control_plane: SAME_REGION_SERVICES,
    load_balancer: 'per rule / data processed: no figure taken from a source yet',
    external_private: EXTERNAL_PRIVATE,
    nat_gateway:
      '$0.045/GB processed + $0.045/h (c3x.dev; OpenCost configs/azure.json natGateway 0.045 both ways)',
  },
  estimates: {
    cross_region:
      'the cited sources name within-continent figures only. Intercontinental from North America / Europe: $0.05 (recalled from azure.microsoft.com/pricing/details/bandwidth, not in the cited sources); from Asia, Oceania, Middle East, Africa: $0.08, and from South America $0.16, as within those continents. Oceania is priced like Asia.',
    load_balancer: 'no figure taken from a source: $0 until configured.',
  },
  rates: {
    cross_zone_egress: 0,
    cross_zone_ingress: 0,
    cross_region: {
      north_america: { same_continent: 0.02, intercontinental: 0.05 },
      europe: { same_continent: 0.02, intercontinental: 0.05 },
      asia: uniform(0.08),
      oceania: uniform(0.08),
      middle_east: uniform(0.08),
      africa: uniform(0.08),
      south_america: uniform(0.16),
    },
    cross_region_default: 0.02,
    cross_region_pairs: [],
    internet_egress: 0.087,
    internet_egress_by_region: {},
    private_link: 0.01,
    cloud_api: 0,
    k8s_control_plane: 0,
    load_balancer: 0,
    external_private: 0,
    nat_gateway: 0.045,
  },
};

export const RATE_TABLES: Readonly<Record<Provider, RateTable>> = { aws: AWS, gcp: GCP, azure: AZURE };
