// The cost processor: `cost.usd` per flow from its traffic class, its bytes and the provider's prices.
// Per batch, not per flow object: each `traffic.class` dictionary code is mapped to a class index once, then
// one loop over the rows reads typed arrays only. Region pairs (cross_region) and regions' internet rates
// are priced once per distinct name and cached for the processor's life; the NAT decision, on the rows of
// a NAT class only, is a few byte comparisons and one CidrTable lookup per exclusion-checked address (no
// allocation for IPv4). Where k8s_metadata cannot place our end of a flow (standalone, unlabelled nodes),
// the configured `region`/`zone` stand in for it.
import {
  CidrTable,
  type ComponentSettings,
  type FlowBatch,
  FlowFlags,
  getExtension,
  isV4Mapped,
  type Processor,
  type StringColumn,
} from '@netmon/core';
import { K8S_METADATA, type K8sMetadata } from '@netmon/extensions';
import type { Logger } from 'pino';
import { TRAFFIC_CLASS } from '../classify/classes.js';
import { isPublicAddress } from '../classify/classify.js';
import { HostAddresses } from '../classify/local.js';
import type { CostProcessorConfig } from './config.js';
import { CLASS_INDEX, CROSS_REGION, INTERNET_EGRESS, INTERNET_INGRESS, Pricing } from './pricing.js';
import { PROVIDERS, type Provider } from './rates.js';
import { isRegionName } from './regions.js';

export const SRC_REGION = 'src.cloud.region';
export const DST_REGION = 'dst.cloud.region';
export const SRC_ZONE = 'src.cloud.availability_zone';
export const DST_ZONE = 'dst.cloud.availability_zone';
export const COST_USD = 'cost.usd';
/** Written by k8s_attributes for an end in the cluster (a pod, a node, a node's pod range). */
export const SRC_NODE = 'src.k8s.node.name';
export const DST_NODE = 'dst.k8s.node.name';

/** Where the decision about prices stands, as /status shows it. */
export type PricingState = 'priced' | 'unpriced' | 'waiting';

/** The ends of a flow, as indexes into per-end scratch. */
const SRC = 0;
const DST = 1;
const END_KEYS = [
  { region: SRC_REGION, zone: SRC_ZONE, node: SRC_NODE },
  { region: DST_REGION, zone: DST_ZONE, node: DST_NODE },
] as const;

/**
 * Addresses a NAT gateway never carries, whatever the config says: the instance reaches them on its own
 * link (or its hypervisor answers), before any route table applies. Classify puts the metadata services
 * among cloud_api, the class users most often send through the NAT, so without this they would pay it.
 * Link-local 169.254.0.0/16 and fe80::/10 never leave the link (RFC 3927, RFC 4291), loopback never
 * leaves the host — on every cloud. Two are one cloud's own and ordinary addresses elsewhere: AWS's Nitro
 * IPv6 range (IMDS fd00:ec2::254, DNS, NTP; docs.aws.amazon.com/AWSEC2/latest/UserGuide/
 * instancedata-data-retrieval.html) and Azure's platform address 168.63.129.16 (WireServer, DNS, health
 * probes; learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16), answered by the
 * host itself on that cloud — on AWS, 168.63.129.16 is a public address of Microsoft's, reached through
 * the NAT like any other. isPlatformAddress tests exactly these, in bytes.
 */
export const NAT_BYPASS_PLATFORM: Readonly<Record<Provider, readonly string[]>> = {
  aws: ['169.254.0.0/16', '127.0.0.0/8', 'fe80::/10', '::1/128', 'fd00:ec2::/32'],
  gcp: ['169.254.0.0/16', '127.0.0.0/8', 'fe80::/10', '::1/128'],
  azure: ['169.254.0.0/16', '127.0.0.0/8', 'fe80::/10', '::1/128', '168.63.129.16/32'],
};

/**
 * Whether the address at buf[off..off+16) is in NAT_BYPASS_PLATFORM[provider]. Byte comparisons rather than
 * a CidrTable: it runs on every NAT-class row, and a table lookup of an IPv6 address allocates per prefix.
 */
export function isPlatformAddress(buf: Uint8Array, off: number, provider: Provider): boolean {
  if (isV4Mapped(buf, off)) {
    const a = buf[off + 12];
    const b = buf[off + 13];
    return (
      a === 127 ||
      (a === 169 && b === 254) ||
      (provider === 'azure' && a === 168 && b === 63 && buf[off + 14] === 129 && buf[off + 15] === 16)
    );
  }
  const a = buf[off];
  const b = buf[off + 1];
  if (a === 0xfe) return (b & 0xc0) === 0x80;
  if (a === 0xfd) return provider === 'aws' && b === 0x00 && buf[off + 2] === 0x0e && buf[off + 3] === 0xc2;
  for (let k = 0; k < 15; k++) if (buf[off + k] !== 0) return false;
  return buf[off + 15] === 1;
}

/** Region ids are packed two to a number key: at most this many distinct region names are told apart. */
const MAX_REGIONS = 0xffff;
/** At most this many unknown class values are logged (one line each). */
const MAX_WARNED_CLASSES = 16;

/** A platform address of `provider`, or one the config excludes: reached without the NAT gateway. */
function bypassesNat(
  buf: Uint8Array,
  off: number,
  provider: Provider,
  exclude: CidrTable<true> | null,
): boolean {
  return (
    isPlatformAddress(buf, off, provider) || (exclude !== null && exclude.lookup(buf, off) !== undefined)
  );
}

export class CostProcessor implements Processor<FlowBatch> {
  readonly mutates = true;
  private readonly logger: Logger;
  /** undefined: not decided yet (waiting for k8s_metadata); null: no provider, no cost. */
  private pricing: Pricing | null | undefined;
  private readonly metadata: K8sMetadata | undefined;
  private waitingLogged = false;
  private unpricedLogged = false;
  private state: PricingState = 'waiting';
  private reason = 'waiting for the first batch';
  /** `processors::<id>`: where the keys the messages ask for live. */
  private readonly keys: string;
  /** exclude_cidrs: remote ends the config says are reached without the NAT gateway. */
  private readonly exclude: CidrTable<true> | null;
  /** Region id of the configured `region` (0: none, or not a region of the provider in use). */
  private home = 0;
  /**
   * This host's addresses: an end at one of them is ours. Classify's set (one per k8s_metadata extension,
   * so both agree, host_interfaces included), taken on first need; without the extension, one of its own.
   */
  private host: HostAddresses | undefined;
  /** Per batch: whether `host` was synced, this node's code in the src/dst node columns (-2 unknown). */
  private hostFresh = false;
  private readonly hereCode = new Int32Array(2);
  /** Per batch: the columns and codes that place an end in this host's region and zone. */
  private readonly placing: ({
    region: StringColumn;
    regionCode: number;
    zone: StringColumn | null;
    zoneCode: number;
  } | null)[] = [null, null];
  /** USD per byte sent to the internet, by region id (NaN: not priced yet). */
  private internetOf = new Float64Array(16).fill(Number.NaN);

  // Per-batch scratch, grown as needed: class index per traffic.class code, region id per region code.
  private classOf = new Uint8Array(16);
  private srcRegionOf = new Int32Array(16);
  private dstRegionOf = new Int32Array(16);
  // Region name → id (1…), and the USD/byte of each (from id, to id) pair seen so far.
  private readonly regionIds = new Map<string, number>();
  private readonly regionNames: (string | undefined)[] = [undefined];
  private readonly pairRates = new Map<number, number>();
  private readonly warnedClasses = new Set<string>();
  private warnedColumnKind = false;

  constructor(
    settings: ComponentSettings,
    private readonly config: CostProcessorConfig,
    host?: HostAddresses,
  ) {
    this.logger = settings.logger;
    this.keys = `processors::${settings.id}`;
    this.host = host;
    this.metadata = getExtension(settings, K8S_METADATA);
    const cidrs = config.nat_gateway.exclude_cidrs;
    this.exclude = cidrs.length === 0 ? null : new CidrTable<true>();
    for (const cidr of cidrs) this.exclude?.add(cidr, true);
    settings.status.describe(() => this.facts());
    if (config.provider === 'none') {
      this.pricing = null;
      this.state = 'unpriced';
      this.reason = 'provider none (configured)';
      this.logger.info(
        { provider: 'none', reason: 'config' },
        'cost: provider none (configured): no cost.usd',
      );
    } else if (config.provider !== undefined) {
      this.pricing = this.use(config.provider, 'configured');
    } else if (this.metadata === undefined) {
      // Nothing will ever say which cloud this is: decide now, not at the first batch.
      this.pricing = null;
      this.unpriced('no provider configured and the k8s_metadata extension is not enabled');
    } else if (this.metadata.standalone) {
      this.pricing = null;
      this.unpriced('no provider configured and k8s_metadata runs standalone (no cluster to read it from)');
    }
  }

  /** The prices in use, once known: for tests and /status-style introspection. */
  get activePricing(): Pricing | null | undefined {
    return this.pricing;
  }

  /** What /status shows: priced or not, why, and with which provider, region and zone. */
  facts(): Record<string, unknown> {
    const p = this.pricing;
    return {
      state: this.state,
      reason: this.reason,
      ...(p ? { provider: p.provider, unit: p.table.unit, prices_as_of: p.table.as_of } : {}),
      region: this.home === 0 ? null : this.regionNames[this.home],
      zone: this.home === 0 ? null : (this.config.zone ?? null),
      nat_gateway: this.config.nat_gateway.enabled,
      ...(this.state === 'unpriced' && this.config.provider !== 'none' ? { hint: this.hint() } : {}),
    };
  }

  private hint(): string {
    return `set ${this.keys}::provider (aws, gcp or azure) and ${this.keys}::region to price flows`;
  }

  /** No prices: said once, in the log and in /status, with the keys that would give them. */
  private unpriced(reason: string): void {
    this.state = 'unpriced';
    this.reason = reason;
    if (this.unpricedLogged) return;
    this.unpricedLogged = true;
    this.logger.warn(
      { provider: 'none', reason, set: [`${this.keys}::provider`, `${this.keys}::region`] },
      `cost: flows stay without cost.usd: ${reason}; ${this.hint()}`,
    );
  }

  private use(provider: Provider, reason: string): Pricing {
    const pricing = new Pricing(provider, this.config);
    const { table } = pricing;
    const region = this.config.region;
    let where = '';
    if (region !== undefined && isRegionName(provider, region)) {
      this.home = this.internRegion(region);
      where = `, region ${region}${this.config.zone ? ` (zone ${this.config.zone})` : ''} for this host's ends that k8s_metadata cannot place`;
    } else if (region !== undefined) {
      // Only a provider read from the nodes gets here: a configured one had the region checked at load.
      this.logger.warn(
        { provider, region, key: `${this.keys}::region` },
        `cost: ${this.keys}::region "${region}" is not a region name of ${provider}: ignored (${provider} comes from the nodes)`,
      );
    }
    this.state = 'priced';
    this.reason = `provider ${provider} (${reason})`;
    this.logger.info(
      {
        provider,
        reason,
        unit: table.unit,
        as_of: table.as_of,
        region: this.home === 0 ? undefined : region,
        zone: this.home === 0 ? undefined : this.config.zone,
        nat_gateway: this.config.nat_gateway.enabled,
      },
      `cost: provider ${provider} (${reason})${where}, list prices per ${table.unit} as of ${table.as_of}`,
    );
    return pricing;
  }

  /** Decides the provider from k8s_metadata; undefined while it does not know yet. */
  private decide(): Pricing | null | undefined {
    const metadata = this.metadata;
    if (metadata === undefined) return null;
    const found = metadata.provider();
    if (found === undefined) {
      if (metadata.synced()) {
        // Every node listed and none says (bare metal, kind, k3s without a cloud provider): unpriced, and
        // asked again at each batch in case a node with a providerID joins.
        this.unpriced('no provider configured and no node names one (spec.providerID)');
      } else if (!this.waitingLogged) {
        this.waitingLogged = true;
        this.state = 'waiting';
        this.reason = 'k8s_metadata has not listed the nodes yet';
        this.logger.info(
          { reason: 'k8s_metadata knows no node provider yet' },
          'cost: waiting for the nodes’ provider (k8s_metadata); flows stay without cost.usd until it is known',
        );
      }
      return undefined;
    }
    if ((PROVIDERS as readonly string[]).includes(found)) {
      this.pricing = this.use(found as Provider, 'most common spec.providerID among nodes (k8s_metadata)');
      return this.pricing;
    }
    this.state = 'unpriced';
    this.reason = `the nodes' provider is "${found}", which has no rate table`;
    this.logger.warn(
      { provider: 'none', nodes_provider: found, reason: 'no rate table for this provider' },
      `cost: the nodes' provider is "${found}", which has no rate table: no cost.usd (set \`provider\` and \`rates\` to price it)`,
    );
    this.pricing = null;
    return null;
  }

  process(batch: FlowBatch): FlowBatch {
    const pricing = this.pricing === undefined ? this.decide() : this.pricing;
    if (!pricing) return batch;
    const classCol = batch.column(TRAFFIC_CLASS);
    if (classCol === undefined) return batch;
    if (classCol.kind !== 'string') {
      if (!this.warnedColumnKind) {
        this.warnedColumnKind = true;
        this.logger.warn(
          { kind: classCol.kind },
          `cost: ${TRAFFIC_CLASS} holds ${classCol.kind} values, not strings`,
        );
      }
      return batch;
    }
    const n = batch.length;
    const out = batch.ensureColumn(COST_USD, 'number').values;
    const classOf = this.mapClasses(classCol);
    const codes = classCol.codes;
    const { txBytes, rxBytes, srcAddr, dstAddr, backendAddr, flags } = batch;
    const { txPerByte, rxPerByte, natPerByte } = pricing;
    const exclude = this.exclude;
    const srcNode = this.stringColumn(batch, SRC_NODE)?.codes ?? null;
    const srcCol = this.stringColumn(batch, SRC_REGION);
    const dstCol = this.stringColumn(batch, DST_REGION);
    let srcOf: Int32Array | null = null;
    let dstOf: Int32Array | null = null;
    const home = this.home;
    // Internet rows look at our end's region when a region has its own price, or when this host's region
    // is to be written to ends that have none.
    const byRegion = home !== 0 || pricing.internetByRegionKnown;
    this.beginBatch();
    for (let i = 0; i < n; i++) {
      const c = classOf[codes[i]];
      if (c === 0) {
        out[i] = Number.NaN;
        continue;
      }
      const tx = txBytes[i];
      const rx = rxBytes[i];
      let usd: number;
      if (c === CROSS_REGION) {
        // Each direction is egress from its sender's region: tx leaves src's region for dst's, rx the reverse.
        if (srcOf === null) srcOf = this.resetRegions(srcCol, 'src');
        if (dstOf === null) dstOf = this.resetRegions(dstCol, 'dst');
        let s = srcCol === null ? 0 : this.regionId(srcOf, srcCol, srcCol.codes[i]);
        let d = dstCol === null ? 0 : this.regionId(dstOf, dstCol, dstCol.codes[i]);
        // An end without a region that is on this host is in this host's region (a rule's cross_region
        // class names the far end only; standalone, ours has no region at all).
        if (home !== 0 && s === 0 && this.onThisHost(batch, i, SRC)) s = this.placeEnd(batch, i, SRC);
        if (home !== 0 && d === 0 && this.onThisHost(batch, i, DST)) d = this.placeEnd(batch, i, DST);
        usd = tx * this.pairRate(pricing, s, d) + rx * this.pairRate(pricing, d, s);
      } else if (byRegion && (c === INTERNET_EGRESS || c === INTERNET_INGRESS)) {
        // Only our side's bytes out are billed, at the rate of the region they leave: our end is src for
        // egress (it opened the connection and sends tx) and dst for ingress (it answers with rx).
        const egress = c === INTERNET_EGRESS;
        let r = 0;
        if (egress && srcCol !== null) {
          if (srcOf === null) srcOf = this.resetRegions(srcCol, 'src');
          r = this.regionId(srcOf, srcCol, srcCol.codes[i]);
        } else if (!egress && dstCol !== null) {
          if (dstOf === null) dstOf = this.resetRegions(dstCol, 'dst');
          r = this.regionId(dstOf, dstCol, dstCol.codes[i]);
        }
        if (r === 0 && home !== 0) r = this.placeEnd(batch, i, egress ? SRC : DST);
        usd = (egress ? tx : rx) * this.internetRate(pricing, r);
      } else {
        usd = tx * txPerByte[c] + rx * rxPerByte[c];
      }
      const nat = natPerByte[c];
      if (nat !== 0) {
        // A NAT gateway carries connections opened from inside the VPC (and their answers), never ones
        // opened from outside: src, the initiator, must be ours. k8s_attributes says so when it ran;
        // without it, an address that is private and not a platform or excluded one counts as ours. (A
        // receiver that knows only local/remote puts the local end in src: counted as opened by it, the
        // same guess that makes classify call a public peer internet_egress.)
        const off = 16 * i;
        const inside =
          srcNode !== null
            ? srcNode[i] !== 0
            : !isPublicAddress(srcAddr, off) && !bypassesNat(srcAddr, off, pricing.provider, exclude);
        // The remote end is then dst: the address dialled and, after DNAT, the one really reached.
        if (
          inside &&
          !bypassesNat(dstAddr, off, pricing.provider, exclude) &&
          ((flags[i] & FlowFlags.Dnat) === 0 || !bypassesNat(backendAddr, off, pricing.provider, exclude))
        ) {
          usd += (tx + rx) * nat;
        }
      }
      out[i] = usd;
    }
    return batch;
  }

  private beginBatch(): void {
    this.hostFresh = false;
    this.hereCode[SRC] = -2;
    this.hereCode[DST] = -2;
    this.placing[SRC] = null;
    this.placing[DST] = null;
  }

  /** The id of a region name (1…; 0 once MAX_REGIONS names are known). */
  private internRegion(name: string): number {
    let id = this.regionIds.get(name);
    if (id === undefined) {
      id = this.regionNames.length <= MAX_REGIONS ? this.regionNames.length : 0;
      if (id !== 0) {
        this.regionIds.set(name, id);
        this.regionNames.push(name);
      }
    }
    return id;
  }

  /** USD per byte sent to the internet from region id `r` (0: unknown), computed once per region. */
  private internetRate(pricing: Pricing, r: number): number {
    if (r >= this.internetOf.length) {
      const grown = new Float64Array(Math.max(r + 1, 2 * this.internetOf.length)).fill(Number.NaN);
      grown.set(this.internetOf);
      this.internetOf = grown;
    }
    let rate = this.internetOf[r];
    if (Number.isNaN(rate)) {
      rate = pricing.internetRate(this.regionNames[r]);
      this.internetOf[r] = rate;
    }
    return rate;
  }

  /**
   * Whether an end of row i is on this host: one of its addresses (interfaces, loopback, the node
   * record's), or, with k8s_attributes, on this node. Only asked for rows that need a region.
   */
  private onThisHost(batch: FlowBatch, i: number, end: number): boolean {
    const host = this.hostAddresses();
    const off = 16 * i;
    const addr =
      end === SRC ? batch.srcAddr : batch.flags[i] & FlowFlags.Dnat ? batch.backendAddr : batch.dstAddr;
    if (host.has(addr, off)) return true;
    let here = this.hereCode[end];
    if (here === -2) {
      here = -1;
      const name = this.metadata?.nodeName;
      const col = name === undefined ? null : this.stringColumn(batch, END_KEYS[end].node);
      if (col !== null) here = col.dict.indexOf(name as string);
      this.hereCode[end] = here;
    }
    if (here <= 0) return false;
    return (this.stringColumn(batch, END_KEYS[end].node) as StringColumn).codes[i] === here;
  }

  private hostAddresses(): HostAddresses {
    this.host ??= this.metadata === undefined ? new HostAddresses() : HostAddresses.of(this.metadata);
    const host = this.host;
    if (this.hostFresh) return host;
    this.hostFresh = true;
    host.sync(this.metadata);
    return host;
  }

  /**
   * Puts `end` of row i in this host's region (and zone), where it has none: its *.cloud.region and
   * *.cloud.availability_zone say where it was priced. Returns the home region id.
   */
  private placeEnd(batch: FlowBatch, i: number, end: number): number {
    let p = this.placing[end];
    if (p === null) {
      const keys = END_KEYS[end];
      const region = this.writableColumn(batch, keys.region);
      if (region === null) return this.home;
      const zoneName = this.config.zone;
      const zone = zoneName === undefined ? null : this.writableColumn(batch, keys.zone);
      p = {
        region,
        regionCode: region.code(this.regionNames[this.home] as string),
        zone,
        zoneCode: zone === null ? 0 : zone.code(zoneName as string),
      };
      this.placing[end] = p;
    }
    if (p.region.codes[i] === 0) p.region.codes[i] = p.regionCode;
    if (p.zone !== null && p.zone.codes[i] === 0) p.zone.codes[i] = p.zoneCode;
    return this.home;
  }

  /** A string column to write, made when absent; null when the key holds another kind of value. */
  private writableColumn(batch: FlowBatch, key: string): StringColumn | null {
    const col = batch.column(key);
    if (col !== undefined && col.kind !== 'string') return null;
    return batch.ensureColumn(key, 'string');
  }

  /** Class index per dictionary code of this batch's traffic.class column (0: no class, no cost). */
  private mapClasses(col: StringColumn): Uint8Array {
    const dict = col.dict;
    if (this.classOf.length < dict.length)
      this.classOf = new Uint8Array(Math.max(dict.length, 2 * this.classOf.length));
    const classOf = this.classOf;
    classOf[0] = 0;
    for (let code = 1; code < dict.length; code++) {
      const c = CLASS_INDEX.get(dict[code]);
      if (c === undefined) this.warnClass(dict[code]);
      classOf[code] = c ?? 0;
    }
    return classOf;
  }

  private warnClass(value: string): void {
    if (this.warnedClasses.has(value) || this.warnedClasses.size >= MAX_WARNED_CLASSES) return;
    this.warnedClasses.add(value);
    this.logger.warn(
      { class: value },
      `cost: unknown ${TRAFFIC_CLASS} "${value}": those flows get no cost.usd`,
    );
  }

  private stringColumn(batch: FlowBatch, key: string): StringColumn | null {
    const col = batch.column(key);
    return col !== undefined && col.kind === 'string' ? col : null;
  }

  /** The scratch map from this batch's region codes to region ids, all "not looked up yet" (-1). */
  private resetRegions(col: StringColumn | null, side: 'src' | 'dst'): Int32Array {
    const len = col === null ? 1 : col.dict.length;
    let map = side === 'src' ? this.srcRegionOf : this.dstRegionOf;
    if (map.length < len) {
      map = new Int32Array(Math.max(len, 2 * map.length));
      if (side === 'src') this.srcRegionOf = map;
      else this.dstRegionOf = map;
    }
    map.fill(-1, 0, len);
    map[0] = 0;
    return map;
  }

  private regionId(map: Int32Array, col: StringColumn, code: number): number {
    const known = map[code];
    if (known >= 0) return known;
    const id = this.internRegion(col.dict[code]);
    map[code] = id;
    return id;
  }

  /** USD per byte from region id `from` to region id `to` (0: unknown), computed once per pair. */
  private pairRate(pricing: Pricing, from: number, to: number): number {
    const key = from * 0x10000 + to;
    let rate = this.pairRates.get(key);
    if (rate === undefined) {
      rate = pricing.regionRate(this.regionNames[from], this.regionNames[to]);
      this.pairRates.set(key, rate);
    }
    return rate;
  }
}
