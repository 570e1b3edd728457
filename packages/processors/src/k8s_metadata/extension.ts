// The k8s_metadata extension: one set of informers per agent (pods, nodes, services, EndpointSlices)
// feeding the MetadataStore that k8s_attributes, classify and cost read through `resolve(batch)`.
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { type ComponentSettings, type FlowBatch, formatDuration } from '@netmon/core';
import type { BatchObservableCallback, Observable } from '@opentelemetry/api';
import type { K8sMetadataConfig } from './config.js';
import { Informer, type ResourceHandler, type SlimObject } from './informer.js';
import { locateApi, nodeNameOf } from './kubeconfig.js';
import { type K8sMetadata, type Resolution, resolveBatch } from './metadata.js';
import { endpointSliceRecord, nodeRecord, podRecord, serviceRecord } from './normalize.js';
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
}

export type Mode = 'cluster' | 'node' | 'standalone';
export type SyncState = 'syncing' | 'synced' | 'degraded' | 'standalone';

const RESOURCES = ['pods', 'nodes', 'services', 'endpointslices'] as const;
type Resource = (typeof RESOURCES)[number];
const EMPTY_LABELS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export class K8sMetadataExtension implements K8sMetadata {
  readonly store = new MetadataStore();
  readonly nodeName: string | undefined;
  readonly standalone: boolean;
  readonly mode: Mode;

  private readonly kc: KubeConfig | undefined;
  /** Where the API was found, or why there is none. */
  private readonly origin: string;
  private readonly nodeNameGuessed: boolean;
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
  private readonly instruments: Observable[];
  private readonly observe: BatchObservableCallback;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: K8sMetadataConfig,
    private readonly options: K8sMetadataOptions = {},
  ) {
    const node = nodeNameOf(config.node_name);
    this.nodeName = node.name;
    this.nodeNameGuessed = node.guessed;
    if (config.standalone) {
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
    this.standalone = this.kc === undefined;
    this.mode = this.standalone ? 'standalone' : config.scope;
    if (this.kc) this.makeInformers(this.kc);
    settings.status.describe(() => this.facts());

    const meter = settings.meter;
    const events = meter.createObservableCounter('netmon_k8s_metadata_events', {
      description:
        'Kubernetes objects applied to the metadata store, by resource (pods, nodes, services, endpointslices) and type (add, update, delete); relists count too.',
      unit: '{event}',
    });
    const restarts = meter.createObservableCounter('netmon_k8s_metadata_restarts', {
      description: 'Restarts of a list/watch after an error, by resource.',
      unit: '{restart}',
    });
    const synced = meter.createObservableGauge('netmon_k8s_metadata_synced', {
      description: '1 when the resource has been listed and its watch is not failing, else 0, by resource.',
    });
    const objects = meter.createObservableGauge('netmon_k8s_metadata_objects', {
      description:
        'Entries in the metadata store by table: pods, nodes, services, endpoint_slices, and addresses (IPs with an owner).',
      unit: '{object}',
    });
    this.instruments = [events, restarts, synced, objects];
    this.observe = (r) => {
      for (const [key, n] of this.events) {
        const [resource, type] = key.split(' ');
        r.observe(events, n, { resource, type });
      }
      for (const [resource, inf] of this.informers) {
        r.observe(restarts, inf.restarts, { resource });
        r.observe(synced, inf.synced && !inf.failing ? 1 : 0, { resource });
      }
      const sizes = this.store.sizes();
      r.observe(objects, sizes.pods, { table: 'pods' });
      r.observe(objects, sizes.nodes, { table: 'nodes' });
      r.observe(objects, sizes.services, { table: 'services' });
      r.observe(objects, sizes.endpointSlices, { table: 'endpoint_slices' });
      r.observe(objects, sizes.addresses, { table: 'addresses' });
    };
    meter.addBatchObservableCallback(this.observe, this.instruments);
  }

  requestPodLabels(keys: readonly string[]): void {
    const added = keys.filter((k) => !this.labelKeys.has(k));
    for (const k of added) this.labelKeys.add(k);
    if (added.length > 0 && this.started && !this.standalone) {
      this.settings.logger.warn(
        { keys: added },
        'pod labels requested after start: pods listed before carry them only from their next update',
      );
    }
  }

  synced(): boolean {
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
    this.settings.meter.removeBatchObservableCallback(this.observe, this.instruments);
    await Promise.all([...this.informers.values()].map((inf) => inf.stop()));
  }

  // --- informers ------------------------------------------------------------------------------------

  private makeInformers(kc: KubeConfig): void {
    const store = this.store;
    const meta = (obj: SlimObject | undefined) => obj?.metadata ?? {};
    const slim = (obj: SlimObject, rec?: { name: string; namespace?: string; uid?: string }) => ({
      name: rec?.name ?? meta(obj).name,
      namespace: rec?.namespace ?? meta(obj).namespace,
      uid: rec?.uid ?? meta(obj).uid,
      resourceVersion: meta(obj).resourceVersion,
    });
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
        onEvent: (type) => {
          const key = `${resource} ${type}`;
          this.events.set(key, (this.events.get(key) ?? 0) + 1);
        },
      });
      this.informers.set(resource, inf as Informer<unknown>);
    };

    add<PodRecord>(
      'pods',
      '/api/v1/pods',
      {
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
      this.config.scope === 'node' ? `spec.nodeName=${this.nodeName}` : undefined,
    );
    add<NodeRecord>('nodes', '/api/v1/nodes', {
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
    });
    const namespaced = (obj: SlimObject, r?: { name: string; namespace: string }) => ({
      name: r?.name ?? meta(obj).name,
      namespace: r?.namespace ?? meta(obj).namespace,
      resourceVersion: meta(obj).resourceVersion,
    });
    add<ServiceRecord>('services', '/api/v1/services', {
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
    });
    add<EndpointSliceRecord>('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', {
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
    });
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
    if (this.mode !== 'node' || !this.informers.get('nodes')?.synced) return undefined;
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
      out.push(`scope node: no node named ${this.nodeName}: this node's pods are not watched`);
    }
    const unplaced = this.podCidrWarning();
    if (unplaced !== undefined) out.push(unplaced);
    return out;
  }

  /** The extension's facts in /status. */
  facts(): Record<string, unknown> {
    return {
      mode: this.mode,
      state: this.state(),
      node_name: this.nodeName ?? null,
      ...(this.standalone ? { reason: this.origin } : { api: this.origin }),
      informers: this.informerFacts(),
      sizes: this.store.sizes(),
      warnings: this.warnings(),
    };
  }
}
