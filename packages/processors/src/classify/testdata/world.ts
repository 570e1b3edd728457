// Generated clusters for classify's property tests: nodes in several zones and regions (some without
// topology labels), pods and hostNetwork pods, pod CIDRs or none (VPC-style CNIs), Services with
// backends and load-balancer IPs (public, private, or a node's address as k3s' ServiceLB does),
// selector-less endpoints, the API server at an endpoint, a node or a pod address, cluster or node
// scope; rules and patterns over those addresses, and flows between them, some translated, some with a
// DNS name. Everything is built from plain numbers fast-check draws, so a failure shrinks to a small world.
import { FlowFlags, type FlowInit, parseIp } from '@netmon/core';
import fc from 'fast-check';
import { MetadataStore } from '@netmon/extensions';
import { TRAFFIC_CLASSES, type TrafficClass } from '../classes.js';
import { isPublicAddress } from '../classify.js';
import { CLOUD_PROVIDERS, type CloudProvider, DEFAULT_PATTERNS, patternApplies } from '../patterns.js';
import { flow } from './cluster.js';

export interface World {
  /** The node the classifier runs on. */
  me: string;
  scope: 'cluster' | 'node';
  /** Nodes have spec.podCIDRs (else pods get addresses from the nodes' subnet, as the EKS VPC CNI does). */
  podCidrs: boolean;
  /** Node name by address, for every address that is a node's or a pod's (hostNetwork pods: the node's). */
  nodeOf: Map<string, string>;
  nodes: string[];
  /** Each node's own address (its record's InternalIP): an address of that host. */
  nodeIp: Map<string, string>;
  /** Every address a flow may use. */
  pool: string[];
  /** [dialled, backend] pairs a translation may produce. */
  translations: { dialled: string; backend: string; lb: boolean; controlPlane: boolean }[];
  domains: string[];
  rules: { name: string; cidrs: string[]; class?: TrafficClass; zone?: string; region?: string }[];
  patterns: { class: TrafficClass; cidrs: string[]; domains: string[]; provider?: CloudProvider[] }[] | undefined;
  /** The store as the agent on `node` would have it (scope node: only that node's pods). */
  store(node: string): MetadataStore;
}

/**
 * Addresses outside the cluster: public, private, IMDS, CGNAT, Azure's platform address (a public one on
 * these AWS clusters), and random ones.
 */
const OUTSIDE = [
  '8.8.8.8',
  '52.216.1.1',
  '198.51.100.7',
  '34.1.2.9',
  '192.168.50.5',
  '10.50.3.3',
  '169.254.169.254',
  '100.64.1.1',
  '168.63.129.16',
];
const DOMAIN_GLOBS = ['*.amazonaws.com', 'db.corp.example', '*.example.*', 'api.*.io', '*.elb.amazonaws.com'];
const DOMAINS = [
  's3.us-east-1.amazonaws.com',
  'x-1.us-east-1.elb.amazonaws.com',
  'db.corp.example',
  'www.example.org',
  'api.v1.io',
  'ABC.gr7.us-east-1.eks.amazonaws.com.',
];

/** True one time in n. */
const oneIn = (n: number) => fc.integer({ min: 1, max: n }).map((k) => k === 1);

const cidrSeed = fc.record({ base: fc.nat(), prefix: fc.integer({ min: 8, max: 32 }) });
const trafficClass = fc.constantFrom(...TRAFFIC_CLASSES);

const seeds = fc.record({
  nodes: fc.array(
    fc.record({
      region: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      zone: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  podCidrs: fc.boolean(),
  scope: fc.constantFrom('cluster' as const, 'node' as const),
  me: fc.nat(),
  pods: fc.array(fc.record({ node: fc.nat(), hostNetwork: oneIn(5) }), {
    maxLength: 10,
  }),
  services: fc.array(
    fc.record({
      backends: fc.array(fc.nat(), { maxLength: 3 }),
      lb: fc.constantFrom('none', 'public', 'private', 'node'),
    }),
    { maxLength: 3 },
  ),
  selectorless: fc.array(fc.nat(), { maxLength: 2 }),
  apiServer: fc.constantFrom('endpoint', 'node', 'pod', 'none'),
  random: fc.array(
    fc.ipV4().filter((ip) => !/^(10|172\.20|203\.0\.113)\./.test(ip)),
    { maxLength: 3 },
  ),
  rules: fc.array(
    fc.record({
      cidrs: fc.array(cidrSeed, { minLength: 1, maxLength: 2 }),
      what: fc.constantFrom('class', 'zone', 'region', 'both'),
      class: trafficClass,
      place: fc.nat(),
    }),
    { maxLength: 4 },
  ),
  patterns: fc.option(
    fc.array(
      fc.record({
        class: trafficClass,
        cidrs: fc.array(cidrSeed, { maxLength: 2 }),
        domains: fc.subarray(DOMAIN_GLOBS),
        // Some patterns belong to a cloud: only those of aws (the generated nodes' provider) apply.
        provider: fc.option(fc.subarray([...CLOUD_PROVIDERS], { minLength: 1 }), { nil: undefined }),
      }),
      { maxLength: 3 },
    ),
    { nil: undefined },
  ),
});

const pick = <T>(list: readonly T[], n: number): T => list[n % list.length];

function v4(ip: string): number {
  const [a, b, c, d] = ip.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function network(ip: string, prefix: number): number {
  return prefix === 0 ? 0 : (v4(ip) & (0xffffffff << (32 - prefix))) >>> 0;
}

function cidrOf(ip: string, prefix: number): string {
  const n = network(ip, prefix);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${prefix}`;
}

export const worlds: fc.Arbitrary<World> = seeds.map((s) => {
  const nodeOf = new Map<string, string>();
  const regions = ['us-east-1', 'us-west-2', 'eu-west-1'];
  const nodes = s.nodes.map((n, i) => {
    const region = n.region === undefined ? undefined : regions[n.region];
    return {
      name: `node-${i}`,
      region,
      zone: n.zone === undefined ? undefined : `${region ?? 'zone'}${'abc'[n.zone]}`,
      ip: `10.0.${i}.10`,
      podCidr: s.podCidrs ? `10.${100 + i}.0.0/24` : undefined,
    };
  });
  for (const n of nodes) nodeOf.set(n.ip, n.name);
  const pods = s.pods.map((p, j) => {
    const ni = p.node % nodes.length;
    const node = nodes[ni];
    // With pod CIDRs, addresses come from the node's range; without (VPC CNI), from the node's subnet.
    const ip = p.hostNetwork ? node.ip : s.podCidrs ? `10.${100 + ni}.0.${j + 2}` : `10.0.${ni}.${j + 20}`;
    nodeOf.set(ip, node.name);
    return { uid: `u-${j}`, name: `pod-${j}`, node: node.name, ip, hostNetwork: p.hostNetwork };
  });
  const owning = pods.filter((p) => !p.hostNetwork);
  const outside = [...OUTSIDE, ...s.random];
  const translations: World['translations'] = [];
  const services = s.services.map((svc, k) => {
    const backends = owning.length === 0 ? [] : [...new Set(svc.backends.map((b) => pick(owning, b)))];
    const lbIp =
      svc.lb === 'public'
        ? `203.0.113.${k + 1}`
        : svc.lb === 'private'
          ? `10.200.0.${k + 1}`
          : svc.lb === 'node'
            ? pick(nodes, k).ip
            : undefined;
    const clusterIp = `172.20.0.${k + 10}`;
    for (const b of backends) {
      translations.push({ dialled: clusterIp, backend: b.ip, lb: false, controlPlane: false });
      if (lbIp !== undefined) translations.push({ dialled: lbIp, backend: b.ip, lb: true, controlPlane: false });
      // A NodePort: any node's address, translated to the backend.
      translations.push({ dialled: pick(nodes, k + 1).ip, backend: b.ip, lb: false, controlPlane: false });
    }
    return { name: `svc-${k}`, clusterIp, lbIp, backends };
  });
  const external = s.selectorless.map((e) => pick(outside, e));
  for (const e of external) {
    translations.push({ dialled: '172.20.0.5', backend: e, lb: false, controlPlane: false });
  }
  const apiPod = owning[0];
  const apiIp =
    s.apiServer === 'endpoint'
      ? '10.0.250.1'
      : s.apiServer === 'node'
        ? nodes[0].ip
        : s.apiServer === 'pod' && apiPod !== undefined
          ? apiPod.ip
          : undefined;
  if (apiIp !== undefined) {
    translations.push({ dialled: '172.20.0.1', backend: apiIp, lb: false, controlPlane: true });
  }
  const pool = [
    ...new Set([
      ...nodes.map((n) => n.ip),
      ...pods.map((p) => p.ip),
      ...services.flatMap((v) => (v.lbIp === undefined ? [v.clusterIp] : [v.clusterIp, v.lbIp])),
      ...external,
      '172.20.0.5',
      '172.20.0.1',
      ...(apiIp === undefined ? [] : [apiIp]),
      ...outside,
    ]),
  ];
  const zones = [...new Set(nodes.flatMap((n) => (n.zone === undefined ? [] : [n.zone]))), 'elsewhere-1a'];
  const rules = s.rules.map((r, i) => ({
    name: `rule-${i}`,
    cidrs: r.cidrs.map((c) => cidrOf(pick(pool, c.base), c.prefix)),
    ...(r.what === 'class' ? { class: r.class } : {}),
    ...(r.what === 'zone' || r.what === 'both' ? { zone: pick(zones, r.place) } : {}),
    ...(r.what === 'region' || r.what === 'both' ? { region: pick(regions, r.place) } : {}),
  }));
  const patterns = s.patterns?.map((p) => ({
    class: p.class,
    cidrs: p.cidrs.map((c) => cidrOf(pick(pool, c.base), c.prefix)),
    domains: p.domains,
    ...(p.provider === undefined ? {} : { provider: p.provider }),
  }));
  const me = pick(nodes, s.me).name;

  const store = (node: string) => {
    const st = new MetadataStore();
    for (const n of nodes) {
      st.upsertNode({
        name: n.name,
        zone: n.zone,
        region: n.region,
        provider: 'aws',
        ips: [n.ip],
        podCidrs: n.podCidr === undefined ? [] : [n.podCidr],
      });
    }
    for (const p of pods) {
      if (s.scope === 'node' && p.node !== node) continue;
      st.upsertPod({
        uid: p.uid,
        name: p.name,
        namespace: 'ns',
        nodeName: p.node,
        phase: 'Running',
        hostNetwork: p.hostNetwork,
        ips: [p.ip],
        workloadKind: 'Pod',
        workloadName: p.name,
        labels: {},
      });
    }
    for (const v of services) {
      st.upsertService({
        namespace: 'ns',
        name: v.name,
        type: v.lbIp === undefined ? 'ClusterIP' : 'LoadBalancer',
        clusterIps: [v.clusterIp],
        loadBalancerIps: v.lbIp === undefined ? [] : [v.lbIp],
      });
      st.upsertEndpointSlice({
        namespace: 'ns',
        name: `${v.name}-x`,
        service: v.name,
        ports: [8080],
        endpoints: v.backends.map((b) => ({ ips: [b.ip], podRef: b.uid })),
      });
    }
    st.upsertService({
      namespace: 'ns',
      name: 'ext',
      type: 'ClusterIP',
      clusterIps: ['172.20.0.5'],
      loadBalancerIps: [],
    });
    st.upsertEndpointSlice({
      namespace: 'ns',
      name: 'ext-x',
      service: 'ext',
      ports: [5432],
      endpoints: external.map((e) => ({ ips: [e] })),
    });
    st.upsertService({
      namespace: 'default',
      name: 'kubernetes',
      type: 'ClusterIP',
      clusterIps: ['172.20.0.1'],
      loadBalancerIps: [],
    });
    if (apiIp !== undefined) {
      st.upsertEndpointSlice({
        namespace: 'default',
        name: 'kubernetes',
        service: 'kubernetes',
        ports: [6443],
        endpoints: [{ ips: [apiIp], ...(apiIp === apiPod?.ip ? { podRef: apiPod.uid } : {}) }],
      });
    }
    return st;
  };

  return {
    me,
    scope: s.scope,
    podCidrs: s.podCidrs,
    nodeOf,
    nodes: nodes.map((n) => n.name),
    nodeIp: new Map(nodes.map((n) => [n.name, n.ip])),
    pool,
    translations,
    domains: DOMAINS,
    rules,
    patterns,
    store,
  };
});

/** One flow of a world, as drawn: ends by pool index, an optional translation and DNS name. */
export interface FlowSeed {
  src: number;
  dst: number;
  translate: number | undefined;
  domain: number | undefined;
  localRemote: boolean;
}

export const flowSeeds: fc.Arbitrary<FlowSeed> = fc.record({
  src: fc.nat(),
  dst: fc.nat(),
  translate: fc.option(fc.nat(), { nil: undefined, freq: 3 }),
  domain: fc.option(fc.nat(), { nil: undefined, freq: 2 }),
  localRemote: oneIn(5),
});

/** A drawn flow: what the receiver reports, and the two ends classify compares (backend when translated). */
export interface DrawnFlow {
  init: FlowInit;
  src: string;
  end: string;
  translation: World['translations'][number] | undefined;
  domain: string | undefined;
}

export function drawFlow(w: World, f: FlowSeed): DrawnFlow {
  const src = pick(w.pool, f.src);
  const t = f.translate === undefined || w.translations.length === 0 ? undefined : pick(w.translations, f.translate);
  const dst = t === undefined ? pick(w.pool, f.dst) : t.dialled;
  const domain = f.domain === undefined ? undefined : pick(w.domains, f.domain);
  const init = flow(src, dst, {
    flags: f.localRemote ? FlowFlags.LocalRemote : FlowFlags.InitiatorKnown,
    ...(t === undefined ? {} : { backendIp: t.backend, backendPort: 8080 }),
    ...(domain === undefined ? {} : { attributes: { 'dst.domain': domain } }),
  });
  return { init, src, end: t === undefined ? dst : t.backend, translation: t, domain };
}

/**
 * The rule that decides an address: the longest prefix holding it, the rule listed first among equal
 * CIDRs (as the processor's table keeps the first). Independent of the processor's CidrTable.
 */
export function ruleOf(w: World, ip: string): { index: number; rule: World['rules'][number] } | undefined {
  let best: { index: number; prefix: number } | undefined;
  w.rules.forEach((r, index) => {
    for (const c of r.cidrs) {
      const [base, len] = c.split('/');
      const prefix = Number(len);
      if (network(ip, prefix) !== v4(base)) continue;
      if (best === undefined || prefix > best.prefix) best = { index, prefix };
    }
  });
  return best === undefined ? undefined : { index: best.index, rule: w.rules[best.index] };
}

/**
 * Whether an address is in one of the `patterns` CIDRs that apply on these clusters' provider, aws (the
 * shipped table when the world sets none); IPv4 only, as every address here.
 */
export function inPatternCidr(w: World, ip: string): boolean {
  return (w.patterns ?? DEFAULT_PATTERNS).some(
    (p) =>
      patternApplies(p, 'aws') &&
    p.cidrs.some((c) => {
      if (c.includes(':')) return false;
      const [base, len] = c.split('/');
      return network(ip, Number(len ?? 32)) === network(base, Number(len ?? 32));
    }),
  );
}

const scratch = new Uint8Array(16);
export function isPublic(ip: string): boolean {
  parseIp(ip, scratch, 0);
  return isPublicAddress(scratch, 0);
}
