// The k8s_metadata extension: one set of informers per agent (pods, nodes, services, EndpointSlices)
// feeding the MetadataStore that k8s_attributes, classify and cost read through `resolve(batch)` — or,
// with `snapshot`, the same store filled once from kubectl's JSON through the same normalizers.
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  type ComponentSettings,
  type FlowBatch,
  formatDuration,
  type ObservedMetrics,
  observeMetrics,
} from '@netmon/core';
import { type K8sMetadataConfig, snapshotPaths } from './config.js';
import type { K8sMetadata, Resolution } from './contract.js';
import { Informer, type ResourceHandler, type SlimObject } from './informer.js';
import { locateApi, nodeNameOf } from './kubeconfig.js';
import { K8S_METADATA_METRICS } from './metrics.js';
import { endpointSliceRecord, nodeRecord, podRecord, serviceRecord } from './normalize.js';
import { resolveBatch } from './resolve.js';
import { readSnapshotFile, SNAPSHOT_KINDS, type SnapshotItem } from './snapshot.js';
import {
  type EndpointSliceRecord,
  MetadataStore,
  type NodeRecord,
  type PodRecord,
  type ServiceRecord,
} from './store.js';

/** Knobs for tests and benchmarks; the defaults are production's. */
export interface K8sMetadataOptions {
  /** Use this instead of locating the API (kubeconfig key, service account, KUBECONFIG, ~/.kube/config). */
  kubeConfig?: KubeConfig;
  /** Restart delay after a list or watch error: initialMs doubling to maxMs, with jitter. Default 1 s → 30 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** Items per list page. Default 500 (client-go's pager); 0: unpaged. */
  pageSize?: number;
  /** Multiplies the client's own re-watch delays (1 s doubling to 30 s). Default 1. */
  reconnectScale?: number;
  /** Prefix of the service-account files, for tests of in-cluster detection. */
  serviceAccountRoot?: string;
  /** The environment NODE_NAME is read from. Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

export type Mode = 'cluster' | 'node' | 'standalone';
export type SyncState = 'syncing' | 'synced' | 'degraded' | 'standalone';

const RESOURCES = ['pods', 'nodes', 'services', 'endpointslices'] as const;
type Resource = (typeof RESOURCES)[number];
const EMPTY_LABELS: Record<string, string> = Object.freeze({}) as Record<string, string>;

interface Handlers {
  pods: ResourceHandler<PodRecord>;
  nodes: ResourceHandler<NodeRecord>;
  services: ResourceHandler<ServiceRecord>;
  endpointslices: ResourceHandler<EndpointSliceRecord>;
}

/** What loading the snapshot found, for /status and the log. */
interface SnapshotFacts {
  /** Objects applied to the store, by resource (an object in two files counts twice). */
  loaded: Record<Resource, number>;
  /** Items of kinds the store is not built from, by kind. */
  skipped_kinds: Record<string, number>;
  /** Items skipped for want of the fields an address owner needs, by resource; no_kind: no kind at all. */
  invalid: Record<Resource | 'no_kind', number>;
  /** With scope node: pods of other nodes left out, as the API's field selector would. */
  pods_of_other_nodes: number;
  ms: number;
}

/** What each resource's normalizer needs, for the log line about skipped items. */
const REQUIRED_FIELDS: Record<Resource | 'no_kind', string> = {
  pods: 'metadata.uid, name and namespace',
  nodes: 'metadata.name',
  services: 'metadata.name and namespace',
  endpointslices: 'metadata.name, namespace and the label kubernetes.io/service-name',
  no_kind: 'kind',
};

export class K8sMetadataExtension implements K8sMetadata {
  readonly store = new MetadataStore();
  readonly nodeName: string | undefined;
  readonly standalone: boolean;
  readonly offline: boolean;
  readonly mode: Mode;

  private readonly kc: KubeConfig | undefined;
  /** Where the API was found, or why there is none. */
  private readonly origin: string;
  private readonly nodeNameGuessed: boolean;
  /** The snapshot files (absolute), when the cluster is read from them instead of the API. */
  private readonly snapshotFiles: string[] | undefined;
  private snapshot: SnapshotFacts | undefined;
  private snapshotError: string | undefined;
  private readonly handlers: Handlers;
  private readonly labelKeys = new Set<string>();
  private readonly informers = new Map<Resource, Informer<unknown>>();
  private readonly events = new Map<string, number>();
  /** Namespace, node, phase and kind strings, once each: every pod repeats them. */
  private readonly strings = new Map<string, string>();
  private started = false;
  private stopping = false;
  private syncTimedOut = false;
  private syncedAt: number | undefined;
  private startedAt = 0;
  private syncWaiter: ((synced: boolean) => void) | undefined;
  /** The problem last reported as recoverable_error; undefined: ok. */
  private reported: string | undefined;
  private readonly metrics: ObservedMetrics<typeof K8S_METADATA_METRICS>;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: K8sMetadataConfig,
    private readonly options: K8sMetadataOptions = {},
  ) {
    const files = snapshotPaths(config);
    this.snapshotFiles = files?.map((f) => path.resolve(settings.configDir, f));
    if (this.snapshotFiles) {
      // A snapshot is read anywhere (a laptop, CI): the host name says nothing about which node is ours.
      this.nodeName = config.node_name ?? (options.env ?? process.env).NODE_NAME ?? undefined;
      if (this.nodeName === '') this.nodeName = undefined;
      this.nodeNameGuessed = false;
    } else {
      const node = nodeNameOf(config.node_name, options.env);
      this.nodeName = node.name;
      this.nodeNameGuessed = node.guessed;
    }
    this.handlers = this.makeHandlers();
    if (this.snapshotFiles) {
      this.kc = undefined;
      this.origin = `snapshot ${this.snapshotFiles.join(', ')}`;
    } else if (config.standalone) {
      this.kc = undefined;
      this.origin = 'standalone: true in the configuration';
    } else if (options.kubeConfig) {
      this.kc = options.kubeConfig;
      this.origin = 'a KubeConfig given in code';
    } else {
      const where = locateApi({
        kubeconfig:
          config.kubeconfig === undefined ? undefined : path.resolve(settings.configDir, config.kubeconfig),
        serviceAccountRoot: options.serviceAccountRoot,
      });
      this.kc = where.kc;
      this.origin = where.kc ? where.source : where.reason;
    }
    this.standalone = this.kc === undefined && this.snapshotFiles === undefined;
    this.offline = this.snapshotFiles !== undefined;
    this.mode = this.standalone ? 'standalone' : config.scope;
    if (this.kc) this.makeInformers(this.kc);
    settings.status.describe(() => this.facts());

    this.metrics = observeMetrics(settings.meter, K8S_METADATA_METRICS, (r) => {
      for (const [key, n] of this.events) {
        const [resource, type] = key.split(' ');
        r.events(n, { resource, type });
      }
      for (const [resource, inf] of this.informers) {
        r.restarts(inf.restarts, { resource });
        r.synced(inf.synced && !inf.failing ? 1 : 0, { resource });
      }
      if (this.snapshotFiles) {
        for (const resource of RESOURCES) r.synced(this.snapshot ? 1 : 0, { resource });
      }
      const sizes = this.store.sizes();
      r.objects(sizes.pods, { table: 'pods' });
      r.objects(sizes.nodes, { table: 'nodes' });
      r.objects(sizes.services, { table: 'services' });
      r.objects(sizes.endpointSlices, { table: 'endpoint_slices' });
      r.objects(sizes.addresses, { table: 'addresses' });
    });
  }

  requestPodLabels(keys: readonly string[]): void {
    const added = keys.filter((k) => !this.labelKeys.has(k));
    for (const k of added) this.labelKeys.add(k);
    if (added.length > 0 && this.started && !this.standalone) {
      this.settings.logger.warn(
        { keys: added },
        this.snapshotFiles
          ? 'pod labels requested after start: the pods of the snapshot, read at start, do not carry them'
          : 'pod labels requested after start: pods listed before carry them only from their next update',
      );
    }
  }

  synced(): boolean {
    if (this.snapshotFiles) return this.snapshot !== undefined;
    for (const inf of this.informers.values()) if (!inf.synced) return false;
    return true;
  }

  provider(): string | undefined {
    let best: string | undefined;
    let most = 0;
    for (const [provider, n] of this.store.providers()) {
      if (n > most) {
        best = provider;
        most = n;
      }
    }
    return best;
  }

  resolve(batch: FlowBatch): Resolution {
    return resolveBatch(this.store, batch);
  }

  async start(): Promise<void> {
    if (this.started || this.stopping) return;
    this.started = true;
    this.startedAt = Date.now();
    const log = this.settings.logger;
    if (this.standalone) {
      log.info({ reason: this.origin }, 'running standalone: flows get no Kubernetes metadata');
      return;
    }
    if (this.snapshotFiles) {
      await this.loadSnapshot(this.snapshotFiles);
      return;
    }
    if (this.nodeNameGuessed) {
      log.warn(
        { node_name: this.nodeName },
        "node_name is unset and NODE_NAME is empty: using the host name as the node's name. Set NODE_NAME from the downward API (fieldRef spec.nodeName) in the DaemonSet",
      );
    }
    log.info({ api: this.origin, scope: this.mode, node_name: this.nodeName }, 'watching the Kubernetes API');
    for (const inf of this.informers.values()) inf.start();
    const wait = this.config.wait_for_sync;
    if (wait <= 0 || this.synced()) return;
    let timer: NodeJS.Timeout | undefined;
    const synced = await new Promise<boolean>((resolve) => {
      this.syncWaiter = resolve;
      timer = setTimeout(() => resolve(false), wait);
    });
    clearTimeout(timer);
    this.syncWaiter = undefined;
    if (synced || this.stopping) return;
    this.syncTimedOut = true;
    log.warn(
      { waited: formatDuration(wait), informers: this.informerFacts() },
      'not synced in time; starting anyway: flows are labelled as metadata arrives',
    );
    this.report();
  }

  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.syncWaiter?.(false);
    this.metrics.close();
    await Promise.all([...this.informers.values()].map((inf) => inf.stop()));
  }

  // --- informers ------------------------------------------------------------------------------------

  private makeInformers(kc: KubeConfig): void {
    const add = <R>(
      resource: Resource,
      apiPath: string,
      handler: ResourceHandler<R>,
      fieldSelector?: string,
    ): void => {
      const inf = new Informer<R>({
        resource,
        path: apiPath,
        fieldSelector,
        kc,
        logger: this.settings.logger,
        handler,
        backoff: this.options.backoff ?? { initialMs: 1000, maxMs: 30_000 },
        pageSize: this.options.pageSize ?? 500,
        reconnectScale: this.options.reconnectScale ?? 1,
        onChange: () => this.changed(),
        onEvent: (type) => this.counted(resource, type),
      });
      this.informers.set(resource, inf as Informer<unknown>);
    };
    const h = this.handlers;
    add(
      'pods',
      '/api/v1/pods',
      h.pods,
      this.config.scope === 'node' ? `spec.nodeName=${this.nodeName}` : undefined,
    );
    add('nodes', '/api/v1/nodes', h.nodes);
    add('services', '/api/v1/services', h.services);
    add('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', h.endpointslices);
  }

  private counted(resource: Resource, type: 'add' | 'update' | 'delete'): void {
    const key = `${resource} ${type}`;
    this.events.set(key, (this.events.get(key) ?? 0) + 1);
  }

  /** API object → store record → store, per resource: what informers and snapshots share. */
  private makeHandlers(): Handlers {
    const store = this.store;
    const meta = (obj: SlimObject | undefined) => obj?.metadata ?? {};
    const slim = (obj: SlimObject, rec?: { name: string; namespace?: string; uid?: string }) => ({
      name: rec?.name ?? meta(obj).name,
      namespace: rec?.namespace ?? meta(obj).namespace,
      uid: rec?.uid ?? meta(obj).uid,
      resourceVersion: meta(obj).resourceVersion,
    });
    const namespaced = (obj: SlimObject, r?: { name: string; namespace: string }) => ({
      name: r?.name ?? meta(obj).name,
      namespace: r?.namespace ?? meta(obj).namespace,
      resourceVersion: meta(obj).resourceVersion,
    });
    return {
      pods: {
        normalize: (obj) => {
          const r = podRecord(obj, this.labelKeys);
          if (!r) return undefined;
          r.namespace = this.intern(r.namespace);
          if (r.nodeName !== undefined) r.nodeName = this.intern(r.nodeName);
          r.phase = this.intern(r.phase);
          r.workloadKind = this.intern(r.workloadKind);
          if (this.labelKeys.size === 0 || Object.keys(r.labels).length === 0) r.labels = EMPTY_LABELS;
          return r;
        },
        slim,
        upsert: (r) => store.upsertPod(r),
        remove: (obj) => {
          const m = meta(obj);
          if (m.uid) store.deletePod(m.uid);
          else if (m.namespace && m.name) store.deletePodNamed(m.namespace, m.name);
        },
      },
      nodes: {
        normalize: (obj) => {
          const r = nodeRecord(obj);
          if (r) r.name = this.intern(r.name);
          return r;
        },
        slim: (obj, r) => ({ name: r?.name ?? meta(obj).name, resourceVersion: meta(obj).resourceVersion }),
        upsert: (r) => store.upsertNode(r),
        remove: (obj) => {
          const name = meta(obj).name;
          if (name) store.deleteNode(name);
        },
      },
      services: {
        normalize: (obj) => {
          const r = serviceRecord(obj);
          if (r) r.namespace = this.intern(r.namespace);
          return r;
        },
        slim: namespaced,
        upsert: (r) => store.upsertService(r),
        remove: (obj) => {
          const m = meta(obj);
          if (m.namespace && m.name) store.deleteService(m.namespace, m.name);
        },
      },
      endpointslices: {
        normalize: (obj) => {
          const r = endpointSliceRecord(obj);
          if (r) r.namespace = this.intern(r.namespace);
          return r;
        },
        slim: namespaced,
        upsert: (r) => store.upsertEndpointSlice(r),
        remove: (obj) => {
          const m = meta(obj);
          if (m.namespace && m.name) store.deleteEndpointSlice(m.namespace, m.name);
        },
      },
    };
  }

  // --- snapshot -------------------------------------------------------------------------------------

  /**
   * Reads every snapshot file in order into the store, through the informers' normalizers. A file that
   * cannot be read fails the start (validation has read it too, so this means it changed since); items
   * the store cannot use are skipped, counted and logged once.
   */
  private async loadSnapshot(files: string[]): Promise<void> {
    const log = this.settings.logger;
    if (this.mode === 'node' && this.nodeName === undefined) {
      this.snapshotError =
        'scope: node with a snapshot needs node_name (or NODE_NAME): it names the node whose pods are kept';
      throw new Error(this.snapshotError);
    }
    if (this.nodeName === undefined) {
      log.info(
        'snapshot: node_name is unset and NODE_NAME is empty, so no node is this node (k8s_attributes sets no flow.reporter, and classify exactly_once keeps every flow); set node_name to analyse as one node',
      );
    }
    const begin = Date.now();
    const facts: SnapshotFacts = {
      loaded: { pods: 0, nodes: 0, services: 0, endpointslices: 0 },
      skipped_kinds: {},
      invalid: { pods: 0, nodes: 0, services: 0, endpointslices: 0, no_kind: 0 },
      pods_of_other_nodes: 0,
      ms: 0,
    };
    /** A few skipped items by place, so they can be found in the file. */
    const examples: string[] = [];
    const note = (where: string) => {
      if (examples.length < 5) examples.push(where);
    };
    for (const file of files) {
      let doc: Awaited<ReturnType<typeof readSnapshotFile>>;
      try {
        doc = await readSnapshotFile(file);
      } catch (err) {
        this.snapshotError = `snapshot ${(err as Error).message}`;
        throw new Error(this.snapshotError);
      }
      if (this.stopping) return;
      for (const item of doc.items) {
        const resource = SNAPSHOT_KINDS[item.kind];
        const outcome = this.applyItem(resource, item);
        if (outcome === 'invalid') {
          facts.invalid[resource]++;
          note(`${file} ${item.at} (${item.kind}${nameOf(item.object)})`);
        } else if (outcome === 'other_node') facts.pods_of_other_nodes++;
        else facts.loaded[resource]++;
      }
      for (const [kind, n] of doc.skipped) facts.skipped_kinds[kind] = (facts.skipped_kinds[kind] ?? 0) + n;
      facts.invalid.no_kind += doc.noKind.length;
      for (const at of doc.noKind) note(`${file} ${at} (no kind)`);
    }
    facts.ms = Date.now() - begin;
    this.snapshot = facts;

    const kinds = Object.entries(facts.skipped_kinds);
    if (kinds.length > 0) {
      log.warn(
        { kinds: facts.skipped_kinds },
        `snapshot: skipped ${kinds.reduce((a, [, n]) => a + n, 0)} items of kinds the metadata store is not built from (${kinds.map(([k]) => k).join(', ')}); it reads Pod, Node, Service and EndpointSlice`,
      );
    }
    const invalid = (Object.entries(facts.invalid) as [Resource | 'no_kind', number][]).filter(
      ([, n]) => n > 0,
    );
    if (invalid.length > 0) {
      log.warn(
        { invalid: facts.invalid, first: examples },
        `snapshot: skipped ${invalid.reduce((a, [, n]) => a + n, 0)} items missing fields (${invalid.map(([r, n]) => `${n} ${r}: need ${REQUIRED_FIELDS[r]}`).join('; ')})`,
      );
    }
    const sizes = this.store.sizes();
    log.info(
      {
        files,
        scope: this.mode,
        node_name: this.nodeName ?? null,
        ms: facts.ms,
        ...(this.mode === 'node' ? { pods_of_other_nodes: facts.pods_of_other_nodes } : {}),
      },
      `snapshot: ${sizes.pods} pods, ${sizes.nodes} nodes, ${sizes.services} services, ${sizes.endpointSlices} endpointslices from ${files.join(', ')}`,
    );
    for (const warning of this.warnings()) log.warn(warning);
  }

  private applyItem(resource: Resource, item: SnapshotItem): 'loaded' | 'invalid' | 'other_node' {
    const apply = <R>(handler: ResourceHandler<R>, keep?: (r: R) => boolean) => {
      let record: R | undefined;
      try {
        record = handler.normalize(item.object);
      } catch {
        record = undefined;
      }
      if (record === undefined) return 'invalid';
      // The field selector spec.nodeName=<node_name> a node-scoped informer lists with.
      if (keep && !keep(record)) return 'other_node';
      handler.upsert(record);
      this.counted(resource, 'add');
      return 'loaded';
    };
    const h = this.handlers;
    switch (resource) {
      case 'pods':
        return apply(h.pods, this.mode === 'node' ? (r) => r.nodeName === this.nodeName : undefined);
      case 'nodes':
        return apply(h.nodes);
      case 'services':
        return apply(h.services);
      case 'endpointslices':
        return apply(h.endpointslices);
    }
  }

  private intern(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }

  /** An informer synced, failed or recovered. */
  private changed(): void {
    if (this.stopping) return;
    if (this.synced() && this.syncedAt === undefined) {
      this.syncedAt = Date.now();
      this.settings.logger.info(
        { ms: this.syncedAt - this.startedAt, ...this.store.sizes() },
        'Kubernetes metadata synced',
      );
      if (this.config.scope === 'node' && this.nodeName && !this.store.node(this.nodeName)) {
        this.settings.logger.warn(
          { node_name: this.nodeName, nodes: this.store.sizes().nodes },
          "no node of that name: this node's pods are not watched. Set node_name, or NODE_NAME from the downward API (fieldRef spec.nodeName)",
        );
      }
      const unplaced = this.podCidrWarning();
      if (unplaced !== undefined) this.settings.logger.warn({ nodes: this.store.sizes().nodes }, unplaced);
    }
    if (this.synced()) this.syncWaiter?.(true);
    this.report();
  }

  /** recoverable_error while an informer fails (or sync timed out and is still missing), else ok. */
  private report(): void {
    if (this.stopping) return;
    const failing = [...this.informers].filter(([, inf]) => inf.failing);
    let problem: string | undefined;
    if (failing.length > 0) {
      problem = `Kubernetes API failing: ${failing.map(([r, inf]) => `${r}: ${inf.lastError}`).join('; ')}`;
    } else if (this.syncTimedOut && !this.synced()) {
      problem = `not synced after ${formatDuration(this.config.wait_for_sync)}; flows are labelled as metadata arrives`;
    }
    if (problem === this.reported) return;
    this.reported = problem;
    if (problem === undefined) this.settings.status.ok();
    else this.settings.status.recoverableError(new Error(problem));
  }

  state(): SyncState {
    if (this.standalone) return 'standalone';
    if (this.snapshotFiles) return this.snapshot ? 'synced' : 'syncing';
    const all = [...this.informers.values()];
    if (all.some((inf) => inf.failing)) return 'degraded';
    return all.every((inf) => inf.synced) ? 'synced' : 'syncing';
  }

  private informerFacts(): Record<string, { synced: boolean; restarts: number; last_error: string | null }> {
    const out: Record<string, { synced: boolean; restarts: number; last_error: string | null }> = {};
    for (const [resource, inf] of this.informers) {
      out[resource] = { synced: inf.synced, restarts: inf.restarts, last_error: inf.lastError ?? null };
    }
    return out;
  }

  /**
   * scope node places the pods of other nodes only by their node's spec.podCIDRs. CNIs that allocate pod
   * addresses themselves (EKS VPC CNI, Azure CNI, Cilium cluster-pool) set none, and then every such pod
   * is an unknown address: no zone (cross-zone cost lost) and, to classify's exactly-once, a host outside
   * the cluster (both nodes report the connection). Only the user can fix it, so say how.
   */
  private podCidrWarning(): string | undefined {
    const nodesListed = this.snapshotFiles
      ? this.snapshot !== undefined
      : this.informers.get('nodes')?.synced;
    if (this.mode !== 'node' || !nodesListed) return undefined;
    if (this.store.sizes().nodes === 0 || this.store.hasPodCidrs()) return undefined;
    return 'scope node: no node has spec.podCIDRs (the CNI allocates pod addresses itself, e.g. EKS VPC CNI, Azure CNI, Cilium cluster-pool), so pods on other nodes are unknown addresses: flows to them get no pod, workload or zone, cross-zone traffic is missed, and with classify exactly_once both nodes report each connection between their pods. Use scope: cluster';
  }

  /** Configuration problems that do not stop the extension (each is also logged once). */
  private warnings(): string[] {
    const out: string[] = [];
    if (
      this.mode === 'node' &&
      this.synced() &&
      this.nodeName !== undefined &&
      this.store.node(this.nodeName) === undefined
    ) {
      out.push(
        `scope node: no node named ${this.nodeName}: this node's pods are not ${this.snapshotFiles ? 'loaded' : 'watched'}`,
      );
    }
    const unplaced = this.podCidrWarning();
    if (unplaced !== undefined) out.push(unplaced);
    if (this.snapshot) out.push(...this.snapshotWarnings());
    return out;
  }

  /** A snapshot without some kind, or without this node: answers poorer than live ones would be. */
  private snapshotWarnings(): string[] {
    const out: string[] = [];
    const sizes = this.store.sizes();
    const missing = [
      sizes.pods === 0 && this.snapshot?.pods_of_other_nodes === 0 ? 'Pod (no workloads)' : '',
      sizes.nodes === 0 ? 'Node (no zones, regions, cloud provider or node addresses)' : '',
      sizes.services === 0 ? 'Service (no ClusterIPs)' : '',
      sizes.endpointSlices === 0 ? 'EndpointSlice (no Service of a backend, no API-server endpoints)' : '',
    ].filter((x) => x !== '');
    if (missing.length > 0) {
      out.push(
        `snapshot has no ${missing.join(', no ')}: write it with kubectl get pods,nodes,services,endpointslices -A -o json (kubectl get all leaves out nodes and endpointslices)`,
      );
    }
    // In scope node a missing node is already said above, with what it costs there.
    if (
      this.mode !== 'node' &&
      this.nodeName !== undefined &&
      sizes.nodes > 0 &&
      !this.store.node(this.nodeName)
    ) {
      out.push(
        `node_name ${this.nodeName} is not among the snapshot's nodes: no flow is this node's (flow.reporter stays unset, classify exactly_once keeps every flow)`,
      );
    }
    return out;
  }

  /** The extension's facts in /status. */
  facts(): Record<string, unknown> {
    return {
      mode: this.mode,
      state: this.state(),
      node_name: this.nodeName ?? null,
      ...(this.snapshotFiles
        ? {
            snapshot: {
              files: this.snapshotFiles,
              ...(this.snapshot ?? {}),
              ...(this.snapshotError ? { error: this.snapshotError } : {}),
            },
          }
        : this.standalone
          ? { reason: this.origin }
          : { api: this.origin }),
      informers: this.informerFacts(),
      sizes: this.store.sizes(),
      warnings: this.warnings(),
    };
  }
}

/** ` ns/name` of an API object, for the log line that points at skipped items. */
function nameOf(obj: unknown): string {
  const m = (obj as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  if (typeof m?.name !== 'string' || m.name === '') return '';
  return typeof m.namespace === 'string' && m.namespace !== '' ? ` ${m.namespace}/${m.name}` : ` ${m.name}`;
}
