// The cost processor: `cost.usd` per flow from its traffic class, its bytes and the provider's prices.
// Per batch, not per flow object: each `traffic.class` dictionary code is mapped to a class index once, then
// one loop over the rows reads typed arrays only. Region pairs (cross_region) are priced once per distinct
// pair and cached for the processor's life; the NAT decision, on the rows of a NAT class only, is a few
// byte comparisons and one CidrTable lookup per exclusion-checked address (no allocation for IPv4).
import {
  CidrTable,
  type ComponentSettings,
  type FlowBatch,
  FlowFlags,
  isV4Mapped,
  type Processor,
  type StringColumn,
} from '@netmon/core';
import type { Logger } from 'pino';
import { TRAFFIC_CLASS } from '../classify/classes.js';
import { isPublicAddress } from '../classify/classify.js';
import { K8S_METADATA, type K8sMetadata } from '../k8s_metadata/metadata.js';
import type { CostProcessorConfig } from './config.js';
import { CLASS_INDEX, CROSS_REGION, Pricing } from './pricing.js';
import { PROVIDERS, type Provider } from './rates.js';
export const SRC_REGION = 'src.cloud.region';
export const DST_REGION = 'dst.cloud.region';
export const COST_USD = 'cost.usd';
/** Written by k8s_attributes for an end in the cluster (a pod, a node, a node's pod range). */
export const SRC_NODE = 'src.k8s.node.name';

/**
 * Addresses a NAT gateway never carries, whatever the config says: the instance reaches them on its own
 * link (or its hypervisor answers), before any route table applies. Classify puts the metadata services
 * among cloud_api, the class users most often send through the NAT, so without this they would pay it.
 * 169.254.0.0/16 and loopback are what Kubecost's in-zone defaults (peers.md 1.5) and kubenetmon's
 * link-local = INTRA_VPC rule (1.2) treat as local; the IPv6 link-local range, AWS's Nitro IPv6 range
 * (IMDS fd00:ec2::254, DNS, NTP) and Azure's platform address (WireServer, DNS, health probes) are the
 * same kind of address. isPlatformAddress tests exactly these, in bytes.
 */
export const NAT_BYPASS_PLATFORM = [
  '169.254.0.0/16',
  '127.0.0.0/8',
  'fe80::/10',
  '::1/128',
  'fd00:ec2::/32',
  '168.63.129.16/32',
] as const;

/**
 * Whether the address at buf[off..off+16) is in NAT_BYPASS_PLATFORM. Byte comparisons rather than a
 * CidrTable: it runs on every NAT-class row, and a table lookup of an IPv6 address allocates per prefix.
 */
export function isPlatformAddress(buf: Uint8Array, off: number): boolean {
  if (isV4Mapped(buf, off)) {
    const a = buf[off + 12];
    const b = buf[off + 13];
    return (
      a === 127 ||
      (a === 169 && b === 254) ||
      (a === 168 && b === 63 && buf[off + 14] === 129 && buf[off + 15] === 16)
    );
  }
  const a = buf[off];
  const b = buf[off + 1];
  if (a === 0xfe) return (b & 0xc0) === 0x80;
  if (a === 0xfd) return b === 0x00 && buf[off + 2] === 0x0e && buf[off + 3] === 0xc2;
  for (let k = 0; k < 15; k++) if (buf[off + k] !== 0) return false;
  return buf[off + 15] === 1;
}

/** Region ids are packed two to a number key: at most this many distinct region names are told apart. */
const MAX_REGIONS = 0xffff;
/** At most this many unknown class values are logged (one line each). */
const MAX_WARNED_CLASSES = 16;

/** A platform address, or one the config excludes: reached without the NAT gateway. */
function bypassesNat(buf: Uint8Array, off: number, exclude: CidrTable<true> | null): boolean {
  return isPlatformAddress(buf, off) || (exclude !== null && exclude.lookup(buf, off) !== undefined);
}

export class CostProcessor implements Processor<FlowBatch> {
  readonly mutates = true;
  private readonly logger: Logger;
  /** undefined: not decided yet (waiting for k8s_metadata); null: no provider, no cost. */
  private pricing: Pricing | null | undefined;
  private readonly metadata: K8sMetadata | undefined;
  private waitingLogged = false;
  /** exclude_cidrs: remote ends the config says are reached without the NAT gateway. */
  private readonly exclude: CidrTable<true> | null;

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
  ) {
    this.logger = settings.logger;
    this.metadata = settings.extensions.get(K8S_METADATA) as K8sMetadata | undefined;
    const cidrs = config.nat_gateway.exclude_cidrs;
    this.exclude = cidrs.length === 0 ? null : new CidrTable<true>();
    for (const cidr of cidrs) this.exclude?.add(cidr, true);
    if (config.provider === 'none') {
      this.pricing = null;
      this.logger.info(
        { provider: 'none', reason: 'config' },
        'cost: provider none (configured): no cost.usd',
      );
    } else if (config.provider !== undefined) {
      this.pricing = this.use(config.provider, 'configured');
    }
  }

  /** The prices in use, once known: for tests and /status-style introspection. */
  get activePricing(): Pricing | null | undefined {
    return this.pricing;
  }

  private use(provider: Provider, reason: string): Pricing {
    const pricing = new Pricing(provider, this.config);
    const { table } = pricing;
    this.logger.info(
      {
        provider,
        reason,
        unit: table.unit,
        as_of: table.as_of,
        nat_gateway: this.config.nat_gateway.enabled,
      },
      `cost: provider ${provider} (${reason}), list prices per ${table.unit} as of ${table.as_of}`,
    );
    return pricing;
  }

  /** Decides the provider from k8s_metadata; undefined while it does not know yet. */
  private decide(): Pricing | null | undefined {
    if (this.metadata === undefined) {
      this.logger.info(
        { provider: 'none', reason: 'no provider configured and the k8s_metadata extension is not enabled' },
        'cost: no provider configured and k8s_metadata not enabled: no cost.usd (set `provider`)',
      );
      this.pricing = null;
      return null;
    }
    const found = this.metadata.provider();
    if (found === undefined) {
      if (!this.waitingLogged) {
        this.waitingLogged = true;
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
        const s = srcCol === null ? 0 : this.regionId(srcOf, srcCol, srcCol.codes[i]);
        const d = dstCol === null ? 0 : this.regionId(dstOf, dstCol, dstCol.codes[i]);
        usd = tx * this.pairRate(pricing, s, d) + rx * this.pairRate(pricing, d, s);
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
            : !isPublicAddress(srcAddr, off) && !bypassesNat(srcAddr, off, exclude);
        // The remote end is then dst: the address dialled and, after DNAT, the one really reached.
        if (
          inside &&
          !bypassesNat(dstAddr, off, exclude) &&
          ((flags[i] & FlowFlags.Dnat) === 0 || !bypassesNat(backendAddr, off, exclude))
        ) {
          usd += (tx + rx) * nat;
        }
      }
      out[i] = usd;
    }
    return batch;
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
    const name = col.dict[code];
    let id = this.regionIds.get(name);
    if (id === undefined) {
      id = this.regionNames.length <= MAX_REGIONS ? this.regionNames.length : 0;
      if (id !== 0) {
        this.regionIds.set(name, id);
        this.regionNames.push(name);
      }
    }
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
