// Region name → continent, per cloud, for inter-region pricing. Names are matched by prefix, so regions
// launched after this was written land on the right continent as long as they follow the cloud's naming;
// a name that matches nothing is unknown and priced at the table's `cross_region_default`.
import type { Continent, Provider } from './rates.js';

type Rule = readonly [RegExp, Continent];

// AWS: `<area>-<direction>-<n>` (us-east-1, ap-southeast-2, il-central-1, us-gov-west-1, cn-north-1).
const AWS_RULES: readonly Rule[] = [
  [/^(us|ca|mx)-/, 'north_america'],
  [/^sa-/, 'south_america'],
  [/^eu-/, 'europe'],
  // Sydney, Melbourne, Auckland: the ap- regions in Oceania.
  [/^ap-southeast-(2|4|6)\b/, 'oceania'],
  [/^(ap|cn)-/, 'asia'],
  [/^(me|il)-/, 'middle_east'],
  [/^af-/, 'africa'],
];

// GCP: `<area>-<direction><n>` (us-central1, northamerica-northeast1, europe-west4, me-west1).
const GCP_RULES: readonly Rule[] = [
  [/^(us|northamerica)-/, 'north_america'],
  [/^southamerica-/, 'south_america'],
  [/^europe-/, 'europe'],
  [/^asia-/, 'asia'],
  [/^australia-/, 'oceania'],
  [/^me-/, 'middle_east'],
  [/^africa-/, 'africa'],
];

// Azure: one word (eastus, westeurope, uksouth, japaneast, brazilsouth); display names ("East US") are
// accepted too: spaces, dashes and case are ignored.
const AZURE_RULES: readonly Rule[] = [
  [
    /^(eastus|westus|centralus|northcentralus|southcentralus|westcentralus|usgov|usdod|canada|mexico)/,
    'north_america',
  ],
  [/^(brazil|chile)/, 'south_america'],
  [
    /^(northeurope|westeurope|uk|france|germany|switzerland|norway|sweden|poland|italy|spain|austria|belgium|denmark|finland|greece)/,
    'europe',
  ],
  [/^(australia|newzealand)/, 'oceania'],
  [
    /^(eastasia|southeastasia|japan|korea|centralindia|southindia|westindia|jioindia|indonesia|malaysia|taiwan|china)/,
    'asia',
  ],
  [/^(uae|qatar|israel|saudi|kuwait)/, 'middle_east'],
  [/^southafrica/, 'africa'],
];

const RULES: Readonly<Record<Provider, readonly Rule[]>> = {
  aws: AWS_RULES,
  gcp: GCP_RULES,
  azure: AZURE_RULES,
};

/**
 * A region name as the provider compares them: lower case; for Azure without spaces, dashes and
 * underscores, so the display name `East US` is `eastus`.
 */
export function regionKey(provider: Provider, region: string): string {
  return provider === 'azure' ? region.toLowerCase().replace(/[\s_-]+/g, '') : region.toLowerCase().trim();
}

/** The continent of a region name on `provider`, or undefined when the name is not one we know. */
export function continentOf(provider: Provider, region: string | undefined): Continent | undefined {
  if (!region) return undefined;
  const name = regionKey(provider, region);
  for (const [pattern, continent] of RULES[provider]) if (pattern.test(name)) return continent;
  return undefined;
}

const DIRECTION = '(north|south|east|west|central|northeast|northwest|southeast|southwest)';

/**
 * The whole shape of a region name, where the cloud has a fixed one: a zone (`us-east-1a`,
 * `us-central1-a`) or a name of another cloud is not a region. Azure names are free-form words: known
 * prefixes (continentOf) are all there is to check.
 */
const SHAPES: Readonly<Record<Provider, RegExp | undefined>> = {
  // us-east-1, us-gov-west-1, us-isob-east-1, ap-southeast-4, il-central-1
  aws: new RegExp(`^[a-z]{2}(-gov|-iso[a-z]?)?-${DIRECTION}-\\d+$`),
  // us-central1, northamerica-northeast2, europe-west4, me-central2
  gcp: new RegExp(`^[a-z]+-${DIRECTION}\\d+$`),
  azure: undefined,
};

/** A few real names per cloud, for error messages. */
export const REGION_EXAMPLES: Readonly<Record<Provider, string>> = {
  aws: 'us-east-1, eu-west-1, ap-southeast-2',
  gcp: 'us-central1, europe-west4, asia-northeast1',
  azure: 'eastus, westeurope, japaneast',
};

/** Whether `region` names a region of `provider`: the cloud's naming shape and a continent we know. */
export function isRegionName(provider: Provider, region: string): boolean {
  const shape = SHAPES[provider];
  if (shape !== undefined && !shape.test(regionKey(provider, region))) return false;
  return continentOf(provider, region) !== undefined;
}

/**
 * Whether `zone` can be a zone of `region` on `provider`: AWS and GCP zone names are the region's name
 * and a suffix (`us-east-1a`, `us-east-1-bos-1a`, `us-central1-a`); Azure's, as Kubernetes labels them, are
 * `<region>-<n>` or a bare digit (`0`: not zonal).
 */
export function isZoneOf(provider: Provider, zone: string, region: string): boolean {
  const z = regionKey(provider, zone);
  const r = regionKey(provider, region);
  if (provider === 'azure') return /^\d$/.test(z) || (z.startsWith(r) && /^\d$/.test(z.slice(r.length)));
  if (provider === 'gcp') return z.startsWith(`${r}-`) && z.length > r.length + 1;
  return z.startsWith(r) && z.length > r.length && !/^\d/.test(z.slice(r.length));
}
