// The cluster as the enrichment path sees it: who owns each IP. Fed by the informers (or by tests) with
// normalized records, read per flow by k8s_attributes and classify. Writes are rare (one per watch event)
// and may do work; reads are a Map lookup or two and never allocate for IPv4.
import { type AddressKey, addressKey, addressKeyOf, CidrTable } from '@netmon/core';

export type EntityKind = 'pod' | 'service' | 'node' | 'endpoint';

/** A pod as the store keeps it: only what flows are labelled with, as plain strings. */
export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  nodeName?: string;
  /** Pending, Running, Succeeded, Failed, Unknown. Succeeded and Failed pods own no IP. */
  phase: string;
  hostNetwork: boolean;
  /** status.podIPs (both families), or status.podIP when podIPs is absent. */
  ips: string[];
  workloadKind: string;
  workloadName: string;
  labels: Record<string, string>;
  /**
   * A mirror pod's `kubernetes.io/config.mirror` annotation: the hash of its static pod's manifest. The
   * kubelet runs the static pod under that hash as its UID, and names the pod's cgroup after it; the mirror
   * pod the API shows has a UID of its own.
   */
  configHash?: string;
}

export interface NodeRecord {
  name: string;
  zone?: string;
  region?: string;
  /** aws | gcp | azure | another providerID scheme | undefined. */
  provider?: string;
  /** InternalIP and ExternalIP addresses. */
  ips: string[];
  /** spec.podCIDRs: locates pods this agent does not watch (scope node) on their node. */
  podCidrs: string[];
}

export interface ServiceRecord {
  namespace: string;
  name: string;
  type: string;
  /** spec.clusterIPs (dual-stack), without "None". */
  clusterIps: string[];
  /** status.loadBalancer.ingress[].ip and spec.externalIPs. */
  loadBalancerIps: string[];
}

export interface EndpointSliceRecord {
  namespace: string;
  /** The slice's own name: a service has several. */
  name: string;
  /** The owning service (label kubernetes.io/service-name). */
  service: string;
  ports: number[];
  endpoints: { ips: string[]; podRef?: string }[];
}

/**
 * One owner of addresses as flows are labelled with it. The object is stable while the owner lives (its
 * fields may be updated in place), so per-batch caches key on `id`; ids are reused after removal.
 */
export interface Entity {
  readonly id: number;
  readonly kind: EntityKind;
  namespace?: string;
  pod?: string;
  workloadKind?: string;
  workloadName?: string;
  /** The node the pod runs on, or the node itself. Undefined for services and endpoints. */
  nodeName?: string;
  /** The service (ClusterIP, load-balancer IP or endpoint) the address belongs to. */
  service?: string;
  labels?: Record<string, string>;
  /** The API server: the `kubernetes` service in `default` or one of its endpoints. */
  controlPlane: boolean;
  /** A load-balancer ingress IP or external IP of a Service. */
  loadBalancer: boolean;
  /** Bumped on every change, so caches of derived values (attribute codes) know to refresh. */
  version: number;
}

/** Stronger owners win an address: a ClusterIP is never a pod's, a running pod's IP never its node's. */
const PRIORITY: Record<EntityKind, number> = { service: 4, pod: 3, node: 2, endpoint: 1 };

/**
 * A Service's load-balancer and external IPs rank below nodes: k3s' ServiceLB and `externalIPs` often
 * reuse node addresses, and node traffic must stay the node's.
 */
function priority(e: Entity): number {
  return e.kind === 'service' && e.loadBalancer ? 1.5 : PRIORITY[e.kind];
}

interface Backend {
  port: number;
  serviceKey: string;
  fallback: Entity;
}

interface Claim {
  entity: Entity;
  /** Order of arrival: among equals, the newest claim wins (a reused pod IP belongs to the new pod). */
  seq: number;
}

export interface StoreSizes {
  pods: number;
  nodes: number;
  services: number;
  endpointSlices: number;
  addresses: number;
}

export class MetadataStore {
  private readonly v4 = new Map<number, Entity>();
  private readonly v6 = new Map<string, Entity>();
  private readonly claims = new Map<AddressKey, Claim[]>();
  private readonly podCidrs = new CidrTable<Entity>();
  /** Service by backend address and port, for DNAT'ed flows whose dialled address is not a ClusterIP. */
  private readonly backends = new Map<AddressKey, Backend[]>();
  private readonly controlPlaneIps = new Set<AddressKey>();

  private readonly pods = new Map<string, { record: PodRecord; entity: Entity; keys: AddressKey[] }>();
  /** A static pod's UID on its node (its mirror pod's config hash) → the mirror pod's uid. */
  private readonly mirrors = new Map<string, string>();
  /** namespace → name → uid: a name belongs to one pod at a time. */
  private readonly podNames = new Map<string, Map<string, string>>();
  private readonly nodes = new Map<
    string,
    { record: NodeRecord; entity: Entity; keys: AddressKey[]; range: Entity }
  >();
  private readonly services = new Map<string, { record: ServiceRecord; cluster: Entity; lb: Entity }>();
  private readonly slices = new Map<
    string,
    { record: EndpointSliceRecord; entities: Entity[]; keys: AddressKey[]; backendKeys: AddressKey[] }
  >();

  /** Told the namespace and name of every pod the store deletes (metric exporters drop its series). */
  private readonly podDeletedListeners = new Set<(namespace: string, name: string) => void>();

  private nextId = 0;
  private readonly freeIds: number[] = [];
  private readonly byId: (Entity | undefined)[] = [];
  private seq = 0;
  /** Changes since the store was made: any write bumps it. */
  generation = 0;
  /** Node changes only (zones, regions): caches of per-pod facts derived from nodes key on it. */
  nodeGeneration = 0;

  /** One more than the largest entity id in use: the size per-batch caches need. */
  get idLimit(): number {
    return this.nextId;
  }

  /** The live entity with this id. */
  entity(id: number): Entity | undefined {
    return this.byId[id];
  }

  sizes(): StoreSizes {
    return {
      pods: this.pods.size,
      nodes: this.nodes.size,
      services: this.services.size,
      endpointSlices: this.slices.size,
      addresses: this.v4.size + this.v6.size,
    };
  }

  // --- reads (per flow) -------------------------------------------------------------------------------

  /** The owner of the address at buf[off..off+16): pod, service, node or endpoint; null when unknown. */
  lookup(buf: Uint8Array, off: number): Entity | null {
    // Inlined IPv4-mapped test and key: this is the hottest call of the enrichment path.
    if (
      buf[off] === 0 &&
      buf[off + 1] === 0 &&
      buf[off + 2] === 0 &&
      buf[off + 3] === 0 &&
      buf[off + 4] === 0 &&
      buf[off + 5] === 0 &&
      buf[off + 6] === 0 &&
      buf[off + 7] === 0 &&
      buf[off + 8] === 0 &&
      buf[off + 9] === 0 &&
      buf[off + 10] === 0xff &&
      buf[off + 11] === 0xff
    ) {
      const key =
        ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
      const hit = this.v4.get(key);
      if (hit !== undefined) return hit;
    } else {
      let key = '';
      for (let i = 0; i < 16; i += 2) key += String.fromCharCode((buf[off + i] << 8) | buf[off + i + 1]);
      const hit = this.v6.get(key);
      if (hit !== undefined) return hit;
    }
    // A pod this agent does not watch (scope node) is still placed on its node by the node's pod CIDR.
    if (this.podCidrs.size === 0) return null;
    return this.podCidrs.lookup(buf, off) ?? null;
  }

  /** The service whose endpoints include this address and port (a DNAT backend), or null. */
  serviceOfBackend(buf: Uint8Array, off: number, port: number): Entity | null {
    if (this.backends.size === 0) return null;
    const list = this.backends.get(addressKey(buf, off));
    if (!list) return null;
    for (const b of list) {
      // The service may have arrived after its slice: prefer its ClusterIP entity when it exists now.
      if (b.port === port || b.port === 0) return this.services.get(b.serviceKey)?.cluster ?? b.fallback;
    }
    return null;
  }

  /** True when the address is the API server's (an endpoint of default/kubernetes). */
  isControlPlane(buf: Uint8Array, off: number): boolean {
    return this.controlPlaneIps.size > 0 && this.controlPlaneIps.has(addressKey(buf, off));
  }

  /** True when some node's podCIDR is known: only then are pods this store does not hold placed. */
  hasPodCidrs(): boolean {
    return this.podCidrs.size > 0;
  }

  node(name: string): NodeRecord | undefined {
    return this.nodes.get(name)?.record;
  }

  /** Zone and region of an entity: its node's for pods and nodes, none for services and endpoints. */
  zoneOf(entity: Entity): string | undefined {
    return entity.nodeName === undefined ? undefined : this.nodes.get(entity.nodeName)?.record.zone;
  }

  regionOf(entity: Entity): string | undefined {
    return entity.nodeName === undefined ? undefined : this.nodes.get(entity.nodeName)?.record.region;
  }

  /**
   * The pod with this UID, whatever its addresses: a hostNetwork pod (whose IP is its node's) or a finished
   * one (whose IP is no longer its own) is still found. Receivers that know a socket's pod by its cgroup
   * name it so. A static pod's UID (the kubelet's, which names its cgroup) finds its mirror pod.
   */
  podByUid(uid: string): Entity | undefined {
    const pod = this.pods.get(uid);
    if (pod !== undefined) return pod.entity;
    const mirror = this.mirrors.get(uid);
    return mirror === undefined ? undefined : this.pods.get(mirror)?.entity;
  }

  /** Every node's provider, counted: the cost processor's default provider is the most common. */
  providers(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { record } of this.nodes.values()) {
      if (record.provider) out.set(record.provider, (out.get(record.provider) ?? 0) + 1);
    }
    return out;
  }

  // --- writes (per watch event) -----------------------------------------------------------------------

  upsertPod(record: PodRecord): void {
    // Same name, new uid: the pod was replaced (a StatefulSet pod recreated while a watch was down, seen
    // by a relist as an update). The old one is gone and must not keep its addresses.
    const previous = this.podNames.get(record.namespace)?.get(record.name);
    if (previous !== undefined && previous !== record.uid) this.deletePod(previous);
    let names = this.podNames.get(record.namespace);
    if (!names) {
      names = new Map();
      this.podNames.set(record.namespace, names);
    }
    names.set(record.name, record.uid);
    const existing = this.pods.get(record.uid);
    const entity = existing?.entity ?? this.newEntity('pod');
    if (existing) {
      // Addresses the pod keeps keep their claim (and its age): an update of an older pod must not take
      // back an IP a newer pod has since been given.
      const owns = !record.hostNetwork && record.phase !== 'Succeeded' && record.phase !== 'Failed';
      const still = owns ? keysOf(record.ips) : [];
      this.unclaimAll(
        existing.keys.filter((k) => !still.includes(k)),
        entity,
      );
      // A pod keeps its uid, namespace and name for life; tolerate a record that says otherwise.
      if (existing.record.namespace !== record.namespace || existing.record.name !== record.name) {
        this.forgetName(existing.record);
      }
      if (existing.record.configHash !== record.configHash) this.forgetMirror(existing.record);
    }
    Object.assign(entity, {
      namespace: record.namespace,
      pod: record.name,
      workloadKind: record.workloadKind,
      workloadName: record.workloadName,
      nodeName: record.nodeName,
      labels: record.labels,
      version: entity.version + 1,
    });
    // A finished pod's IP may already be someone else's; a hostNetwork pod's IP is its node's.
    const owns = !record.hostNetwork && record.phase !== 'Succeeded' && record.phase !== 'Failed';
    const keys = owns ? keysOf(record.ips) : [];
    for (const key of keys) if (!existing?.keys.includes(key)) this.claim(key, entity);
    if (record.configHash !== undefined) this.mirrors.set(record.configHash, record.uid);
    this.pods.set(record.uid, { record, entity, keys });
    this.generation++;
  }

  deletePod(uid: string): void {
    const existing = this.pods.get(uid);
    if (!existing) return;
    this.unclaimAll(existing.keys, existing.entity);
    this.pods.delete(uid);
    this.forgetName(existing.record);
    this.forgetMirror(existing.record);
    this.release(existing.entity);
    this.generation++;
    for (const listener of this.podDeletedListeners)
      listener(existing.record.namespace, existing.record.name);
  }

  /** True while a pod of this namespace and name is in the store (whatever its uid). */
  hasPod(namespace: string, name: string): boolean {
    return this.podNames.get(namespace)?.has(name) ?? false;
  }

  /**
   * Calls `listener` with the namespace and name of each pod the store deletes (a delete event, a relist
   * without it, a pod replaced under its name — check `hasPod` before acting). Only pods the store knew
   * are reported: with scope node, pods of other nodes never are. Returns the function that unsubscribes.
   */
  onPodDeleted(listener: (namespace: string, name: string) => void): () => void {
    this.podDeletedListeners.add(listener);
    return () => this.podDeletedListeners.delete(listener);
  }

  /** Deletes the pod that has this name now, whatever its uid. */
  deletePodNamed(namespace: string, name: string): void {
    const uid = this.podNames.get(namespace)?.get(name);
    if (uid !== undefined) this.deletePod(uid);
  }

  private forgetName(record: PodRecord): void {
    const names = this.podNames.get(record.namespace);
    if (names?.get(record.name) !== record.uid) return;
    names.delete(record.name);
    if (names.size === 0) this.podNames.delete(record.namespace);
  }

  private forgetMirror(record: PodRecord): void {
    // Another mirror pod may hold the hash now (the kubelet recreated it): only our own entry goes.
    if (record.configHash !== undefined && this.mirrors.get(record.configHash) === record.uid) {
      this.mirrors.delete(record.configHash);
    }
  }

  upsertNode(record: NodeRecord): void {
    const existing = this.nodes.get(record.name);
    const entity = existing?.entity ?? this.newEntity('node');
    const range = existing?.range ?? this.newEntity('pod');
    if (existing) {
      this.unclaimAll(existing.keys, entity);
      for (const cidr of existing.record.podCidrs) this.podCidrs.delete(cidr);
    }
    Object.assign(entity, { nodeName: record.name, version: entity.version + 1 });
    Object.assign(range, { nodeName: record.name, version: range.version + 1 });
    const keys = keysOf(record.ips);
    for (const key of keys) this.claim(key, entity);
    for (const cidr of record.podCidrs) {
      try {
        this.podCidrs.add(cidr, range);
      } catch {
        // A malformed podCIDR in the API is the cluster's problem: the node is still known by its IPs.
      }
    }
    this.nodes.set(record.name, { record, entity, keys, range });
    this.generation++;
    this.nodeGeneration++;
  }

  deleteNode(name: string): void {
    const existing = this.nodes.get(name);
    if (!existing) return;
    this.unclaimAll(existing.keys, existing.entity);
    for (const cidr of existing.record.podCidrs) this.podCidrs.delete(cidr);
    this.nodes.delete(name);
    this.release(existing.entity);
    this.release(existing.range);
    this.generation++;
    this.nodeGeneration++;
  }

  upsertService(record: ServiceRecord): void {
    const id = `${record.namespace}/${record.name}`;
    const existing = this.services.get(id);
    const cluster = existing?.cluster ?? this.newEntity('service');
    const lb = existing?.lb ?? this.newEntity('service');
    if (existing) {
      this.unclaimAll(keysOf(existing.record.clusterIps), cluster);
      this.unclaimAll(keysOf(existing.record.loadBalancerIps), lb);
    }
    const controlPlane = record.namespace === 'default' && record.name === 'kubernetes';
    for (const e of [cluster, lb]) {
      Object.assign(e, {
        namespace: record.namespace,
        service: record.name,
        controlPlane,
        version: e.version + 1,
      });
    }
    lb.loadBalancer = true;
    for (const key of keysOf(record.clusterIps)) this.claim(key, cluster);
    for (const key of keysOf(record.loadBalancerIps)) this.claim(key, lb);
    this.services.set(id, { record, cluster, lb });
    this.generation++;
  }

  deleteService(namespace: string, name: string): void {
    const id = `${namespace}/${name}`;
    const existing = this.services.get(id);
    if (!existing) return;
    this.unclaimAll(keysOf(existing.record.clusterIps), existing.cluster);
    this.unclaimAll(keysOf(existing.record.loadBalancerIps), existing.lb);
    this.services.delete(id);
    this.release(existing.cluster);
    this.release(existing.lb);
    this.generation++;
  }

  upsertEndpointSlice(record: EndpointSliceRecord): void {
    this.deleteEndpointSlice(record.namespace, record.name);
    const controlPlane = record.namespace === 'default' && record.service === 'kubernetes';
    const entities: Entity[] = [];
    const keys: AddressKey[] = [];
    const backendKeys: AddressKey[] = [];
    // Stands for the service while its Service object is unknown (slices and services arrive in any order).
    const serviceKey = `${record.namespace}/${record.service}`;
    const fallback = Object.assign(this.newEntity('service'), {
      namespace: record.namespace,
      service: record.service,
      controlPlane,
    });
    entities.push(fallback);
    const ports = record.ports.length > 0 ? record.ports : [0];
    for (const ep of record.endpoints) {
      const epKeys = keysOf(ep.ips);
      for (const key of epKeys) {
        let list = this.backends.get(key);
        if (!list) {
          list = [];
          this.backends.set(key, list);
        }
        for (const port of ports) list.push({ port, serviceKey, fallback });
        backendKeys.push(key);
        if (controlPlane) this.controlPlaneIps.add(key);
      }
      // Addresses of pods are the pods'; the others (selector-less services, the API server) are endpoints.
      if (ep.podRef !== undefined) continue;
      const entity = Object.assign(this.newEntity('endpoint'), {
        namespace: record.namespace,
        service: record.service,
        controlPlane,
      });
      entities.push(entity);
      for (const key of epKeys) {
        this.claim(key, entity);
        keys.push(key);
      }
    }
    this.slices.set(`${record.namespace}/${record.name}`, { record, entities, keys, backendKeys });
    this.generation++;
  }

  deleteEndpointSlice(namespace: string, name: string): void {
    const id = `${namespace}/${name}`;
    const existing = this.slices.get(id);
    if (!existing) return;
    for (const e of existing.entities) {
      this.unclaimAll(existing.keys, e);
      this.release(e);
    }
    const mine = existing.entities[0];
    for (const key of existing.backendKeys) {
      const list = this.backends.get(key)?.filter((b) => b.fallback !== mine);
      if (list && list.length > 0) this.backends.set(key, list);
      else this.backends.delete(key);
    }
    if (existing.record.namespace === 'default' && existing.record.service === 'kubernetes') {
      for (const key of existing.backendKeys) this.controlPlaneIps.delete(key);
    }
    this.slices.delete(id);
    this.generation++;
  }

  /**
   * Replaces everything of one kind with `records` after a relist: what is gone is deleted, the rest is
   * upserted. Informers diff a relist themselves; this is for sources that hand over whole lists.
   */
  replacePods(records: PodRecord[]): void {
    const keep = new Set(records.map((r) => r.uid));
    for (const uid of [...this.pods.keys()]) if (!keep.has(uid)) this.deletePod(uid);
    for (const r of records) this.upsertPod(r);
  }

  // --- internals --------------------------------------------------------------------------------------

  private newEntity(kind: EntityKind): Entity {
    const id = this.freeIds.pop() ?? this.nextId++;
    const entity: Entity = { id, kind, controlPlane: false, loadBalancer: false, version: 0 };
    this.byId[id] = entity;
    return entity;
  }

  private release(entity: Entity): void {
    this.byId[entity.id] = undefined;
    this.freeIds.push(entity.id);
  }

  private claim(key: AddressKey, entity: Entity): void {
    let list = this.claims.get(key);
    if (!list) {
      list = [];
      this.claims.set(key, list);
    }
    list.push({ entity, seq: this.seq++ });
    this.settle(key, list);
  }

  private unclaimAll(keys: AddressKey[], entity: Entity): void {
    for (const key of keys) {
      const list = this.claims.get(key);
      if (!list) continue;
      const rest = list.filter((c) => c.entity !== entity);
      if (rest.length === 0) {
        this.claims.delete(key);
        this.setOwner(key, undefined);
      } else {
        this.claims.set(key, rest);
        this.settle(key, rest);
      }
    }
  }

  /** Gives the address to its strongest claim; among equals, the newest. */
  private settle(key: AddressKey, list: Claim[]): void {
    let best = list[0];
    for (const c of list) {
      const d = priority(c.entity) - priority(best.entity);
      if (d > 0 || (d === 0 && c.seq > best.seq)) best = c;
    }
    this.setOwner(key, best.entity);
  }

  private setOwner(key: AddressKey, entity: Entity | undefined): void {
    if (typeof key === 'number') {
      if (entity) this.v4.set(key, entity);
      else this.v4.delete(key);
    } else if (entity) this.v6.set(key, entity);
    else this.v6.delete(key);
  }
}

function keysOf(ips: readonly string[]): AddressKey[] {
  const out: AddressKey[] = [];
  for (const ip of ips) {
    const key = addressKeyOf(ip);
    if (key !== undefined && !out.includes(key)) out.push(key);
  }
  return out;
}
