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

/** The continent of a region name on `provider`, or undefined when the name is not one we know. */
export function continentOf(provider: Provider, region: string | undefined): Continent | undefined {
  if (!region) return undefined;
  const name =
    provider === 'azure' ? region.toLowerCase().replace(/[\s_-]+/g, '') : region.toLowerCase().trim();
  for (const [pattern, continent] of RULES[provider]) if (pattern.test(name)) return continent;
  return undefined;
}
