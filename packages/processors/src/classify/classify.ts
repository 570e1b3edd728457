// Where does each flow go, and which node reports it? Per row: the two ends' facts (in the cluster, node,
// zone, region, public or private, matched rule or pattern) come from per-batch caches keyed by entity id
// or dictionary code; the decision itself is a handful of integer comparisons (`decide`).
import {
  CidrTable,
  type ComponentSettings,
  type FlowBatch,
  FlowFlags,
  type ObservedMetrics,
  observeMetrics,
  type Processor,
  parseCidr,
} from '@netmon/core';
import type { DnsCache, DnsName, Entity, K8sMetadata, MetadataStore } from '@netmon/extensions';
import { DESTINATION_KINDS, TRAFFIC_CLASS, TRAFFIC_CLASSES, type TrafficClass } from './classes.js';
import type { ClassifyConfig } from './config.js';
import { HostAddresses } from './local.js';
import { CLASSIFY_METRICS } from './metrics.js';
import { domainRegExp, patternApplies } from './patterns.js';

export const DST_KIND = 'dst.kind';
export const DST_DOMAIN = 'dst.domain';

const C = Object.fromEntries(TRAFFIC_CLASSES.map((c, i) => [c, i])) as Record<TrafficClass, number>;
const K = Object.fromEntries(DESTINATION_KINDS.map((k, i) => [k, i])) as Record<
  (typeof DESTINATION_KINDS)[number],
  number
>;

/**
 * What classify knows about one end of a flow. Ids are small integers (interned strings), -1 unknown.
 * `rule`/`pattern` are list positions (lower wins) and `ruleClass`/`patternClass` class indexes.
 */
export interface EndFacts {
  inCluster: boolean;
  node: number;
  zone: number;
  region: number;
  isPublic: boolean;
  rule: number;
  ruleClass: number;
  pattern: number;
  patternClass: number;
  /**
   * The address is the API server's, but no entity says so: an endpoint of `default/kubernetes` at a
   * node's (or pod's) address. Decided with the other end in view (see `controlPlaneAddress`).
   */
  apiServer: boolean;
  /**
   * The address is this host's own: loopback, an interface's, or this node's record's (HostAddresses).
   * Such an end is on this node, so it is placed in the cluster even when no entity owns it.
   */
  local: boolean;
}

export function emptyFacts(): EndFacts {
  return {
    inCluster: false,
    node: -1,
    zone: -1,
    region: -1,
    isPublic: false,
    rule: -1,
    ruleClass: -1,
    pattern: -1,
    patternClass: -1,
    apiServer: false,
    local: false,
  };
}

/**
 * The traffic class of a flow from its source's and destination's facts (class index into
 * TRAFFIC_CLASSES). Symmetric in its two ends except that internet traffic is egress when the public
 * end is the destination and ingress when it is the source. `unlocated` is set when both ends are in
 * the cluster but a zone is unknown (then same_zone: the cheapest guess, counted).
 */
export function decide(src: EndFacts, dst: EndFacts, out: { unlocated: boolean }): number {
  out.unlocated = false;
  // 0. Between two addresses of this host (loopback included) nothing leaves the machine: no rule or
  // pattern can make such bytes cross a zone or reach a NAT gateway.
  if (src.local && dst.local) return C.same_node;
  // 1. The user's rules, then 2. the destination patterns: the one listed first wins across both ends.
  if (src.ruleClass >= 0 || dst.ruleClass >= 0) {
    if (dst.ruleClass < 0) return src.ruleClass;
    if (src.ruleClass < 0) return dst.ruleClass;
    return src.rule <= dst.rule ? src.ruleClass : dst.ruleClass;
  }
  if (src.patternClass >= 0 || dst.patternClass >= 0) {
    if (dst.patternClass < 0) return src.patternClass;
    if (src.patternClass < 0) return dst.patternClass;
    return src.pattern <= dst.pattern ? src.patternClass : dst.patternClass;
  }
  // 3. Both ends placed (in the cluster, on this host, or located by a rule): compare where they are. An
  // end on this host is placed though this node's zone may be unknown (unlabelled nodes, node_name not
  // among the nodes, standalone): its dst.kind is node, so a flow from the cluster to it is never
  // external_private.
  if (src.node >= 0 && src.node === dst.node) return C.same_node;
  const srcPlaced = src.inCluster || src.local || src.zone >= 0 || src.region >= 0;
  const dstPlaced = dst.inCluster || dst.local || dst.zone >= 0 || dst.region >= 0;
  if (srcPlaced && dstPlaced) {
    if (src.region >= 0 && dst.region >= 0 && src.region !== dst.region) return C.cross_region;
    if (src.zone >= 0 && dst.zone >= 0) return src.zone === dst.zone ? C.same_zone : C.cross_zone;
    out.unlocated = true;
    return C.same_zone;
  }
  // 4. An end outside: the internet when that end is public, else a private network outside the cluster.
  if (!dstPlaced && dst.isPublic) return C.internet_egress;
  if (!srcPlaced && src.isPublic) return C.internet_ingress;
  return C.external_private;
}

/** Private, loopback, link-local, CGNAT, unique-local, multicast and reserved ranges: never "the internet". */
const PRIVATE = new CidrTable<true>();
for (const c of [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '0.0.0.0/8',
  'fc00::/7',
  'fe80::/10',
  '::1/128',
  '::/128',
  // Multicast, broadcast, reserved and benchmarking ranges: local or lab traffic, never billed egress.
  '224.0.0.0/4',
  '240.0.0.0/4',
  '198.18.0.0/15',
  'ff00::/8',
]) {
  PRIVATE.add(c, true);
}

export function isPublicAddress(buf: Uint8Array, off: number): boolean {
  return PRIVATE.lookup(buf, off) === undefined;
}

interface Place {
  node: number;
  zone: number;
  region: number;
}

/** localRows bits: the source, the destination end (the backend when translated), the address dialled. */
const LOCAL_SRC = 1;
const LOCAL_END = 2;
const LOCAL_DIALLED = 4;

/** `dialled` of the source end in endFacts: it was not dialled. */
const SOURCE_END = -2;

/**
 * The API server at an address that is also a node's (self-managed control planes, k3s servers) is the
 * control plane at either end — pods calling it, and it calling webhooks, aggregated APIs and kubelets —
 * unless the other end is the internet: that address is also the node's own, and its downloads must stay
 * internet egress (priced), not control-plane traffic. Symmetric: the test looks only at the other end.
 */
function controlPlaneAddress(f: EndFacts, other: EndFacts): void {
  if (!f.apiServer || other.isPublic) return;
  f.pattern = 0;
  f.patternClass = C.k8s_control_plane;
}

const NOWHERE: Place = { node: -1, zone: -1, region: -1 };

interface Located {
  index: number;
  class: number;
  zone: number;
  region: number;
}

export class ClassifyProcessor implements Processor<FlowBatch> {
  readonly mutates = true;
  private readonly ids = new Map<string, number>();
  private readonly rules = new CidrTable<Located>();
  /** The patterns that apply on this cluster's provider (rebuilt when it changes): addresses, DNS names. */
  private patternCidrs = new CidrTable<Located>();
  private patternDomains: { index: number; class: number; re: RegExp }[] = [];
  /** Every pattern's DNS names, compiled once; `patternDomains` is the part that applies. */
  private readonly allDomains: { index: number; class: number; re: RegExp }[] = [];
  /**
   * The cluster's cloud provider, which decides which provider-specific patterns apply: the `provider`
   * key, else k8s_metadata's (asked again when the nodes change). undefined: unknown, or none.
   */
  private provider: string | undefined;
  private providerFrom: 'config' | 'nodes' | undefined;
  /** The node generation whose provider was last asked (-1: never). */
  private providerGeneration = -1;
  private warnedProvider = false;
  private warnedDisagree = false;
  /** Providers the pattern list names, and what /status says of them. */
  private readonly namedProviders: string[];
  private providerPatterns = '';
  /** Per-entity facts, stamped per batch. */
  private stamp = new Uint32Array(0);
  private epoch = 0;
  private generation = -1;
  private readonly nodeFacts = new Map<string, Place>();
  private eNode = new Int32Array(0);
  private eZone = new Int32Array(0);
  private eRegion = new Int32Array(0);
  /** -1 none, else pattern position (builtins: control plane 0, load balancer 1). */
  private eBuiltin = new Int8Array(0);
  private readonly src = emptyFacts();
  private readonly dst = emptyFacts();
  private readonly verdict = { unlocated: false };
  private readonly placesByRule: boolean;
  private duplicates = 0;
  private warnedNode = false;
  private readonly logger: ComponentSettings['logger'];
  /** `processors::<id>`: where this instance's keys live, for messages that ask to set one. */
  private readonly keys: string;
  private unlocated = 0;
  /** This host's addresses, shared with cost through k8s_metadata; ends at one of them are this node's. */
  private readonly host: HostAddresses;
  private readonly metrics: ObservedMetrics<typeof CLASSIFY_METRICS>;
  /** Per row: LOCAL_SRC, LOCAL_END (the destination end: backend when translated), LOCAL_DIALLED. */
  private localMask = new Uint8Array(0);
  /** Where this host is: its node's id, zone and region (for ends at its own addresses). */
  private here: Place = NOWHERE;

  constructor(
    settings: ComponentSettings,
    private readonly config: ClassifyConfig,
    private readonly metadata: K8sMetadata,
    private readonly dns: DnsCache | undefined,
    host?: HostAddresses,
  ) {
    this.logger = settings.logger;
    this.keys = `processors::${settings.id}`;
    this.host = host ?? HostAddresses.of(metadata);
    const other = this.host.configure(config.host_interfaces, `${this.keys}::host_interfaces`);
    if (other !== undefined) {
      this.logger.warn(
        { key: `${this.keys}::host_interfaces`, value: config.host_interfaces, in_force: other },
        `classify: ${this.keys}::host_interfaces is ${config.host_interfaces}, but ${other} already set the other value for the same k8s_metadata extension: ${other}'s applies (one set of this host's addresses per extension)`,
      );
    }
    this.host.sync(metadata);
    const interfaces = this.host.interfacesCount();
    if (!interfaces.read) {
      this.logger.info(
        { host_interfaces: config.host_interfaces, why: interfaces.why },
        `classify: this machine's network interfaces do not count as this node's (${interfaces.why})`,
      );
    }
    this.placesByRule = config.rules.some((r) => r.zone !== undefined || r.region !== undefined);
    config.rules.forEach((r, index) => {
      const located: Located = {
        index,
        class: r.class === undefined ? -1 : C[r.class],
        zone: r.zone === undefined ? -1 : this.id(`zone:${r.zone}`),
        region: r.region === undefined ? -1 : this.id(`region:${r.region}`),
      };
      for (const c of r.cidrs) this.rules.add(parseCidr(c) as never, located);
    });
    // Patterns come after the two built-in ones (the API server, Service load-balancer IPs).
    config.patterns.forEach((p, i) => {
      for (const d of p.domains)
        this.allDomains.push({ index: i + 2, class: C[p.class], re: domainRegExp(d) });
    });
    this.namedProviders = [...new Set(config.patterns.flatMap((p) => p.provider ?? []))];
    if (config.provider !== undefined) {
      this.provider = config.provider === 'none' ? undefined : config.provider;
      this.providerFrom = 'config';
    }
    this.usePatterns();
    if (config.provider !== undefined) {
      this.logger.info(
        { provider: config.provider, from: `${this.keys}::provider` },
        `classify: provider ${config.provider} (configured): ${this.providerPatterns}`,
      );
    } else if (metadata.standalone) {
      this.warnProviderUnknown('k8s_metadata runs standalone (no nodes to read it from)');
    }
    // Which addresses count as this host's (same_node between two of them), and which cloud's patterns
    // apply, for /status.
    settings.status.describe(() => ({
      ...this.host.status(),
      provider: this.config.provider ?? this.provider ?? null,
      provider_from:
        this.providerFrom === 'config'
          ? `${this.keys}::provider`
          : this.providerFrom === 'nodes'
            ? "nodes' spec.providerID (k8s_metadata)"
            : null,
      provider_patterns: this.providerPatterns,
    }));
    this.metrics = observeMetrics(settings.meter, CLASSIFY_METRICS, (r) => {
      r.duplicates(this.duplicates);
      r.unlocated(this.unlocated);
    });
  }

  shutdown(): void {
    this.metrics.close();
  }

  private id(text: string): number {
    let v = this.ids.get(text);
    if (v === undefined) {
      v = this.ids.size;
      this.ids.set(text, v);
    }
    return v;
  }

  process(batch: FlowBatch): FlowBatch {
    const n = batch.length;
    if (n === 0) return batch;
    const { store, nodeName } = this.metadata;
    const res = this.metadata.resolve(batch);
    this.beginBatch(store);
    // A node name the cluster does not know (NODE_NAME unset, the pod's hostname taken instead) would make
    // every flow look like another node's: keep them all, and say why once.
    const known = nodeName !== undefined && store.node(nodeName) !== undefined;
    const me = known ? this.id(`node:${nodeName}`) : -2;
    if (
      !known &&
      this.config.exactly_once &&
      this.metadata.synced() &&
      !this.metadata.standalone &&
      !this.warnedNode
    ) {
      this.warnedNode = true;
      this.logger.warn(
        { node_name: nodeName },
        'this node is not among the cluster’s nodes: exactly_once keeps every flow until it is (set NODE_NAME from spec.nodeName)',
      );
    }

    this.locateHost(store, nodeName);
    this.followProvider(store);
    const local = this.localRows(batch);

    const classCol = batch.ensureColumn(TRAFFIC_CLASS, 'string');
    const kindCol = batch.ensureColumn(DST_KIND, 'string');
    // Dictionary codes, made on first use so a batch's dictionaries hold only the values it uses.
    const classCodes = new Int32Array(TRAFFIC_CLASSES.length).fill(-1);
    const kindCodes = new Int32Array(DESTINATION_KINDS.length).fill(-1);
    const domainPattern = this.domainPatterns(batch);
    const { srcAddr, dstAddr, backendAddr, flags } = batch;
    const src = this.src;
    const dst = this.dst;
    const keep = this.config.exactly_once ? new Uint32Array(n) : null;
    let kept = 0;

    for (let i = 0; i < n; i++) {
      const off = 16 * i;
      const s = res.src[i];
      const d = res.dst[i];
      const p = res.peer[i];
      const at = local[i];
      this.endFacts(src, store, s, SOURCE_END, srcAddr, off, (at & LOCAL_SRC) !== 0);
      // The destination end is whom the source really reached: a translated flow's rules, patterns and
      // public test are the backend's (a Service whose endpoint is on the internet is internet egress).
      this.endFacts(
        dst,
        store,
        p,
        d,
        flags[i] & FlowFlags.Dnat ? backendAddr : dstAddr,
        off,
        (at & LOCAL_END) !== 0,
      );
      controlPlaneAddress(src, dst);
      controlPlaneAddress(dst, src);
      if (domainPattern !== null) {
        const hit = domainPattern[i];
        if (hit >= 0 && (dst.pattern < 0 || hit < dst.pattern)) {
          dst.pattern = hit;
          dst.patternClass = this.patternClassAt(hit);
        }
      }

      if (keep !== null) {
        if (!this.reportedHere(src, dst, me, flags[i], srcAddr, dstAddr, off)) {
          this.duplicates++;
          continue;
        }
        keep[kept++] = i;
      }

      if (this.placesByRule) {
        this.writePlace(batch, i, 'src', src.rule);
        this.writePlace(batch, i, 'dst', dst.rule);
      }
      const cls = decide(src, dst, this.verdict);
      if (this.verdict.unlocated) this.unlocated++;
      if (classCodes[cls] < 0) classCodes[cls] = classCol.code(TRAFFIC_CLASSES[cls]);
      classCol.codes[i] = classCodes[cls];
      const dialled = d >= 0 ? store.entity(d) : undefined;
      // An address of this host that no entity owns (loopback, a bridge, an address the node record
      // does not list) is the node itself.
      const kind =
        dialled !== undefined
          ? K[dialled.kind]
          : at & LOCAL_DIALLED
            ? K.node
            : isPublicAddress(dstAddr, off)
              ? K.external_public
              : K.external_private;
      if (kindCodes[kind] < 0) kindCodes[kind] = kindCol.code(DESTINATION_KINDS[kind]);
      kindCol.codes[i] = kindCodes[kind];
    }
    if (keep === null || kept === n) return batch;
    return batch.select(keep.subarray(0, kept));
  }

  /**
   * The provider from the nodes, asked when they change (not per flow, nor per batch of a steady cluster);
   * the patterns that apply are rebuilt when it changes. A configured provider stays, and a disagreement
   * with the nodes is said once.
   */
  private followProvider(store: MetadataStore): void {
    if (store.nodeGeneration !== this.providerGeneration) {
      this.providerGeneration = store.nodeGeneration;
      const nodes = this.metadata.provider();
      if (this.config.provider !== undefined) {
        if (nodes !== undefined && nodes !== this.config.provider && !this.warnedDisagree) {
          this.warnedDisagree = true;
          this.logger.warn(
            { provider: this.config.provider, nodes_provider: nodes, key: `${this.keys}::provider` },
            `classify: ${this.keys}::provider is ${this.config.provider} but the nodes' spec.providerID says ${nodes}: the configured provider's patterns apply`,
          );
        }
      } else if (nodes !== this.provider) {
        this.provider = nodes;
        this.providerFrom = nodes === undefined ? undefined : 'nodes';
        this.usePatterns();
        this.logger.info(
          { provider: nodes ?? null, from: "nodes' spec.providerID (k8s_metadata)" },
          `classify: provider ${nodes ?? 'unknown'} (nodes' spec.providerID): ${this.providerPatterns}`,
        );
      }
    }
    if (this.provider === undefined && this.providerFrom === undefined && !this.warnedProvider) {
      if (this.metadata.synced()) this.warnProviderUnknown('no node names one in spec.providerID');
    }
  }

  /** While the provider is unknown, provider-specific patterns do not apply: said once, with the key to set. */
  private warnProviderUnknown(reason: string): void {
    if (this.warnedProvider || this.namedProviders.length === 0) return;
    this.warnedProvider = true;
    this.logger.warn(
      { provider: null, reason, key: `${this.keys}::provider` },
      `classify: the cloud provider is unknown (${reason}): ${this.providerPatterns}; set ${this.keys}::provider (aws, gcp, azure or none)`,
    );
  }

  /** The patterns that apply on the current provider, as the lookup tables the hot loop reads. */
  private usePatterns(): void {
    const cidrs = new CidrTable<Located>();
    const applies = this.config.patterns.map((p) => patternApplies(p, this.provider));
    this.config.patterns.forEach((p, i) => {
      if (!applies[i]) return;
      const located: Located = { index: i + 2, class: C[p.class], zone: -1, region: -1 };
      for (const c of p.cidrs) cidrs.add(parseCidr(c) as never, located);
    });
    this.patternCidrs = cidrs;
    this.patternDomains = this.allDomains.filter((d) => applies[d.index - 2]);
    this.providerPatterns = this.describePatterns();
  }

  /** What /status and the log say of the provider-specific patterns. */
  private describePatterns(): string {
    const named = this.namedProviders;
    const provider = this.provider;
    if (named.length === 0) return 'no pattern names a provider: all apply';
    const off = named.filter((n) => n !== provider);
    if (provider !== undefined && off.length < named.length) {
      const others =
        off.length > 0
          ? `; those of ${off.join(', ')} do not (their destinations are classed by address)`
          : '';
      return `patterns of ${provider} apply${others}`;
    }
    const which =
      provider !== undefined
        ? `provider ${provider}`
        : this.config.provider === 'none'
          ? 'provider none'
          : 'provider unknown';
    return `${which}: no provider-specific pattern applies (those of ${named.join(', ')}); their destinations are classed by address, a public one as internet_egress (priced), never as a free cloud_api`;
  }

  /**
   * Where this host is, and its addresses: the interfaces when they count (read again now and then) and,
   * when the cluster knows this node, its record's addresses. Once per batch; the node record only when
   * the nodes changed.
   */
  private locateHost(store: MetadataStore, nodeName: string | undefined): void {
    this.host.sync(this.metadata);
    // The node's id is the one its pods carry, so "both on this node" and exactly-once agree with them.
    this.here = this.placeOf(store, nodeName ?? '');
  }

  /** Per row, which of its addresses are this host's (LOCAL_* bits): one pass over the address columns. */
  private localRows(batch: FlowBatch): Uint8Array {
    const n = batch.length;
    if (this.localMask.length < n) this.localMask = new Uint8Array(Math.max(n, 2 * this.localMask.length));
    const mask = this.localMask;
    const { srcAddr, dstAddr, backendAddr, flags } = batch;
    const host = this.host;
    for (let i = 0; i < n; i++) {
      const off = 16 * i;
      let m = host.has(srcAddr, off) ? LOCAL_SRC : 0;
      if (host.has(dstAddr, off)) m |= LOCAL_DIALLED;
      if (flags[i] & FlowFlags.Dnat) {
        if (host.has(backendAddr, off)) m |= LOCAL_END;
      } else if (m & LOCAL_DIALLED) m |= LOCAL_END;
      mask[i] = m;
    }
    return mask;
  }

  /**
   * Exactly once across the cluster: the initiator's node reports a connection when the initiator is in
   * the cluster (every node runs an agent), otherwise the node of the responder. When the receiver only
   * knows local and remote (src is then this node's end), the end with the lower address reports.
   */
  private reportedHere(
    src: EndFacts,
    dst: EndFacts,
    me: number,
    flags: number,
    srcAddr: Uint8Array,
    dstAddr: Uint8Array,
    off: number,
  ): boolean {
    if (me < 0) return true;
    if (flags & FlowFlags.InitiatorKnown) {
      if (src.node === me) return true;
      return src.node < 0; // initiated on another node of the cluster: that node reports it
    }
    if (dst.node < 0 || dst.node === me) return true;
    for (let b = 0; b < 16; b++) {
      if (srcAddr[off + b] !== dstAddr[off + b]) return srcAddr[off + b] < dstAddr[off + b];
    }
    return true;
  }

  /**
   * Per-entity facts stay valid across batches until the store changes: a steady cluster pays for each
   * pod once, not once per batch.
   */
  private beginBatch(store: MetadataStore): void {
    if (this.stamp.length < store.idLimit) {
      const size = Math.max(store.idLimit, this.stamp.length * 2, 64);
      this.stamp = new Uint32Array(size);
      this.eNode = new Int32Array(size);
      this.eZone = new Int32Array(size);
      this.eRegion = new Int32Array(size);
      this.eBuiltin = new Int8Array(size);
      this.epoch = 0;
      this.generation = -1;
    }
    if (store.generation === this.generation) return;
    this.generation = store.generation;
    this.nodeFacts.clear();
    if (++this.epoch === 0xffffffff) {
      this.stamp.fill(0);
      this.epoch = 1;
    }
  }

  /** Facts of entity `id`, computed once per store generation. */
  private entityFacts(store: MetadataStore, id: number): boolean {
    if (this.stamp[id] === this.epoch) return true;
    const e: Entity | undefined = store.entity(id);
    if (e === undefined) return false;
    this.stamp[id] = this.epoch;
    const where = e.nodeName === undefined ? NOWHERE : this.placeOf(store, e.nodeName);
    this.eNode[id] = where.node;
    this.eZone[id] = where.zone;
    this.eRegion[id] = where.region;
    this.eBuiltin[id] = e.controlPlane ? 0 : e.loadBalancer ? 1 : -1;
    return true;
  }

  private placeOf(store: MetadataStore, nodeName: string): Place {
    let place = this.nodeFacts.get(nodeName);
    if (place === undefined) {
      const record = store.node(nodeName);
      place = {
        node: this.id(`node:${nodeName}`),
        zone: record?.zone === undefined ? -1 : this.id(`zone:${record.zone}`),
        region: record?.region === undefined ? -1 : this.id(`region:${record.region}`),
      };
      this.nodeFacts.set(nodeName, place);
    }
    return place;
  }

  /** Fills `f` for the end owned by `id` (and, for the destination, dialled as `dialled`) at addr[off]. */
  private endFacts(
    f: EndFacts,
    store: MetadataStore,
    id: number,
    dialled: number,
    addr: Uint8Array,
    off: number,
    local: boolean,
  ): void {
    f.inCluster = false;
    f.local = local;
    f.node = -1;
    f.zone = -1;
    f.region = -1;
    f.pattern = -1;
    f.patternClass = -1;
    f.apiServer = false;
    if (id >= 0 && this.entityFacts(store, id)) {
      const kind = store.entity(id)?.kind;
      f.inCluster = kind !== 'endpoint';
      f.node = this.eNode[id];
      f.zone = this.eZone[id];
      f.region = this.eRegion[id];
      const builtin = this.eBuiltin[id];
      if (builtin >= 0) {
        f.pattern = builtin;
        f.patternClass = builtin === 0 ? C.k8s_control_plane : C.load_balancer;
      }
    }
    if (dialled >= 0 && dialled !== id && f.pattern < 0 && this.entityFacts(store, dialled)) {
      const builtin = this.eBuiltin[dialled];
      if (builtin >= 0) {
        f.pattern = builtin;
        f.patternClass = builtin === 0 ? C.k8s_control_plane : C.load_balancer;
      }
    }
    if (local && f.node < 0) {
      // An address of this host that no entity places (loopback, a bridge, an address the node record
      // does not list) is on this node, in its zone.
      f.node = this.here.node;
      f.zone = this.here.zone;
      f.region = this.here.region;
    }
    f.apiServer = f.pattern < 0 && store.isControlPlane(addr, off);
    // Our own public address (a VM's public IP on its interface) is our side, never "the internet".
    f.isPublic = !f.inCluster && !local && isPublicAddress(addr, off);
    const rule = this.rules.size === 0 ? undefined : this.rules.lookup(addr, off);
    if (rule === undefined) {
      f.rule = -1;
      f.ruleClass = -1;
    } else {
      f.rule = rule.index;
      f.ruleClass = rule.class;
      if (rule.zone >= 0) f.zone = rule.zone;
      if (rule.region >= 0) f.region = rule.region;
    }
    if (f.pattern < 0 && this.patternCidrs.size > 0) {
      const hit = this.patternCidrs.lookup(addr, off);
      if (hit !== undefined) {
        f.pattern = hit.index;
        f.patternClass = hit.class;
      }
    }
  }

  /**
   * An end a rule placed gets the rule's zone and region as attributes when k8s_attributes gave it none,
   * so the cost processor prices a cross-region flow by its real region pair.
   */
  private writePlace(batch: FlowBatch, i: number, end: 'src' | 'dst', rule: number): void {
    if (rule < 0) return;
    const { zone, region } = this.config.rules[rule];
    for (const [key, value] of [
      [`${end}.cloud.availability_zone`, zone],
      [`${end}.cloud.region`, region],
    ] as const) {
      if (value === undefined) continue;
      const col = batch.ensureColumn(key, 'string');
      if (col.codes[i] === 0) col.codes[i] = col.code(value);
    }
  }

  private patternClassAt(index: number): number {
    return C[this.config.patterns[index - 2].class];
  }

  /**
   * Per row, the position of the first domain pattern the destination's DNS names match (-1 none). A
   * `dst.domain` written upstream is matched as it is, once per dictionary entry. Otherwise the dns_cache
   * extension names the address dialled as the flow's source resolved it: dst.domain is the question, and
   * the patterns are tried on the question and on the canonical name its CNAMEs led to (a private
   * endpoint behind sqs.us-east-1.amazonaws.com is named vpce-….vpce.amazonaws.com only there), once per
   * distinct DnsName per batch: the cache shares one object per name, so identity is the key.
   */
  private domainPatterns(batch: FlowBatch): Int32Array | null {
    const patterns = this.patternDomains.length > 0;
    if (!patterns && this.dns === undefined) return null;
    const n = batch.length;
    // -2: not named by the cache; the upstream dictionary decides below.
    const out = new Int32Array(n).fill(-2);
    if (this.dns !== undefined) {
      const col = batch.ensureColumn(DST_DOMAIN, 'string');
      const { codes } = col;
      const { srcAddr, dstAddr } = batch;
      const seen = new Map<DnsName, number>();
      const seenCode: number[] = [];
      const seenHit: number[] = [];
      for (let i = 0; i < n; i++) {
        if (codes[i] !== 0) continue;
        const name = this.dns.domainOf(dstAddr, 16 * i, srcAddr, 16 * i);
        if (name === undefined) continue;
        let k = seen.get(name);
        if (k === undefined) {
          k = seenCode.length;
          seen.set(name, k);
          seenCode.push(col.code(name.name));
          seenHit.push(patterns ? this.firstPattern(name.name, name.canonical) : -1);
        }
        codes[i] = seenCode[k];
        out[i] = seenHit[k];
      }
    }
    if (!patterns) return null;
    const col = batch.column(DST_DOMAIN);
    if (col?.kind !== 'string') return out.fill(-1);
    const { dict, codes } = col;
    let byCode: Int32Array | undefined;
    for (let i = 0; i < n; i++) {
      if (out[i] !== -2) continue;
      const c = codes[i];
      if (byCode === undefined) byCode = new Int32Array(dict.length).fill(-2);
      if (byCode[c] === -2) byCode[c] = c === 0 ? -1 : this.firstPattern(dict[c].toLowerCase(), '');
      out[i] = byCode[c];
    }
    return out;
  }

  /** The position of the first domain pattern `name` or `canonical` (when not '') matches, -1 none. */
  private firstPattern(name: string, canonical: string): number {
    for (const p of this.patternDomains) {
      if (p.re.test(name) || (canonical !== '' && p.re.test(canonical))) return p.index;
    }
    return -1;
  }
}
