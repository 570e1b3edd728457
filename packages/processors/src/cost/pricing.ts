// A provider's rate table with the config's overrides applied, turned into what the hot loop needs:
// USD per byte of tx and of rx for each traffic class, the NAT surcharge per byte for each class, the
// inter-region egress price of a (from, to) region pair, and the internet egress price of a region.
import { TRAFFIC_CLASSES, type TrafficClass } from '../classify/classes.js';
import type { CostProcessorConfig, RatesOverride } from './config.js';
import { CONTINENTS, type Provider, RATE_TABLES, type Rates, type RateTable, UNIT_BYTES } from './rates.js';
import { continentOf, regionKey } from './regions.js';

/** Class index of each traffic class: 0 is "no class" (no cost), then TRAFFIC_CLASSES in order. */
export const CLASS_INDEX: ReadonlyMap<string, number> = new Map(TRAFFIC_CLASSES.map((c, i) => [c, i + 1]));
export const CLASS_COUNT = TRAFFIC_CLASSES.length + 1;
export const CROSS_REGION = CLASS_INDEX.get('cross_region')!;
export const INTERNET_EGRESS = CLASS_INDEX.get('internet_egress')!;
export const INTERNET_INGRESS = CLASS_INDEX.get('internet_ingress')!;

/**
 * The table's rates with `override` applied key by key (cross_region per continent and per field,
 * internet_egress_by_region per region). A configured flat `internet_egress` drops the shipped
 * per-region figures: a blended rate taken from the bill already averages the regions.
 */
export function mergeRates(base: Rates, override: RatesOverride): Rates {
  const cross_region = { ...base.cross_region };
  for (const c of CONTINENTS) {
    const o = override.cross_region?.[c];
    if (o) cross_region[c] = { ...base.cross_region[c], ...definedOnly(o) };
  }
  return {
    ...base,
    ...definedOnly({
      ...override,
      cross_region: undefined,
      cross_region_pairs: undefined,
      internet_egress_by_region: undefined,
    }),
    cross_region,
    // Config pairs first: they win over shipped ones for the same (from, to).
    cross_region_pairs: [...(override.cross_region_pairs ?? []), ...base.cross_region_pairs],
    internet_egress_by_region: {
      ...(override.internet_egress === undefined ? base.internet_egress_by_region : {}),
      ...override.internet_egress_by_region,
    },
  } as Rates;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export class Pricing {
  readonly table: RateTable;
  readonly rates: Rates;
  /** Bytes per billing unit: 1e9 (GB) or 2^30 (GiB). */
  readonly unitBytes: number;
  /** USD per byte sent by src (tx) and by dst (rx), by class index; cross_region is priced per pair. */
  readonly txPerByte = new Float64Array(CLASS_COUNT);
  readonly rxPerByte = new Float64Array(CLASS_COUNT);
  /** NAT gateway processing, USD per byte in either direction, by class index (0 where no NAT). */
  readonly natPerByte = new Float64Array(CLASS_COUNT);
  private readonly pairs = new Map<string, number>();
  /** Internet egress per unit by regionKey, where a region has its own figure. */
  private readonly internetByRegion = new Map<string, number>();

  constructor(
    readonly provider: Provider,
    config: Pick<CostProcessorConfig, 'rates' | 'nat_gateway'>,
  ) {
    this.table = RATE_TABLES[provider];
    this.rates = mergeRates(this.table.rates, config.rates);
    this.unitBytes = UNIT_BYTES[this.table.unit];
    const r = this.rates;
    const perByte = (usdPerUnit: number) => usdPerUnit / this.unitBytes;
    const set = (cls: TrafficClass, tx: number, rx: number) => {
      const c = CLASS_INDEX.get(cls)!;
      this.txPerByte[c] = perByte(tx);
      this.rxPerByte[c] = perByte(rx);
    };
    set('same_node', 0, 0);
    set('same_zone', 0, 0);
    // Every byte that crosses leaves one zone and enters another, whichever way it travels: it pays the
    // egress rate at its sender and the ingress rate at its receiver (AWS 0.01 + 0.01, GCP 0.01 + 0,
    // Azure 0 + 0). The flow is reported once per cluster, so both ends are ours to count.
    set('cross_zone', r.cross_zone_egress + r.cross_zone_ingress, r.cross_zone_egress + r.cross_zone_ingress);
    // cross_region is priced per region pair in the loop (see regionRate); these stay 0.
    // The internet: only what our side sends out is billed. For internet_egress our pod opened the
    // connection (src) and sends tx; for internet_ingress a client opened it and our pod's answers are rx.
    set('internet_egress', r.internet_egress, 0);
    set('internet_ingress', 0, r.internet_egress);
    // Processing charges count every byte through the endpoint / balancer once, whichever way it goes:
    // AWS "each Gigabyte processed … regardless of the traffic's source or destination"; Azure Private
    // Link $0.01/GB inbound + $0.01/GB outbound, i.e. tx is processed inbound and rx outbound, each once,
    // so (tx + rx) × 0.01, not × 0.02.
    set('private_link', r.private_link, r.private_link);
    set('cloud_api', r.cloud_api, r.cloud_api);
    set('k8s_control_plane', r.k8s_control_plane, r.k8s_control_plane);
    set('load_balancer', r.load_balancer, r.load_balancer);
    set('external_private', r.external_private, r.external_private);
    if (config.nat_gateway.enabled) {
      for (const cls of config.nat_gateway.classes)
        this.natPerByte[CLASS_INDEX.get(cls)!] = perByte(r.nat_gateway);
    }
    for (const p of r.cross_region_pairs) {
      const key = pairKey(p.from, p.to);
      if (!this.pairs.has(key)) this.pairs.set(key, p.rate);
    }
    for (const [region, rate] of Object.entries(r.internet_egress_by_region)) {
      this.internetByRegion.set(regionKey(provider, region), rate);
    }
  }

  /** Whether some region's internet egress differs from `internet_egress` (the loop then reads regions). */
  get internetByRegionKnown(): boolean {
    return this.internetByRegion.size > 0;
  }

  /** USD per byte our side sends to the internet from `region` (unknown: internet_egress). */
  internetRate(region: string | undefined): number {
    return this.internetRatePerUnit(region) / this.unitBytes;
  }

  internetRatePerUnit(region: string | undefined): number {
    if (region !== undefined) {
      const own = this.internetByRegion.get(regionKey(this.provider, region));
      if (own !== undefined) return own;
    }
    return this.rates.internet_egress;
  }

  /**
   * USD per byte sent from region `from` to region `to` (egress from `from`): an exact pair from
   * `cross_region_pairs`, else the sender's continent's same_continent / intercontinental rate. An unknown
   * sender region, or an unknown receiver when the sender's continent prices both cases differently, gets
   * `cross_region_default`.
   */
  regionRate(from: string | undefined, to: string | undefined): number {
    return this.regionRatePerUnit(from, to) / this.unitBytes;
  }

  regionRatePerUnit(from: string | undefined, to: string | undefined): number {
    const r = this.rates;
    if (from !== undefined && to !== undefined) {
      const exact = this.pairs.get(pairKey(from, to));
      if (exact !== undefined) return exact;
    }
    const fromContinent = continentOf(this.provider, from);
    if (fromContinent === undefined) return r.cross_region_default;
    const rates = r.cross_region[fromContinent];
    const toContinent = continentOf(this.provider, to);
    if (toContinent === undefined) {
      return rates.same_continent === rates.intercontinental ? rates.same_continent : r.cross_region_default;
    }
    return toContinent === fromContinent ? rates.same_continent : rates.intercontinental;
  }
}

const pairKey = (from: string, to: string) => `${from.toLowerCase()}\u0000${to.toLowerCase()}`;
