// The ReportHealth request: zxporter-netmon's components, each rolled up from the netmon components it
// stands for, and (heartbeat_components: all) every netmon component's own status after them.
import type { ComponentState, Host } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import {
  type ComponentHealth,
  HealthStatus,
  type HealthStatusValue,
  OperatorType,
  type ReportHealthRequest,
  timestamp,
} from './proto.js';

/**
 * The messages zxporter-netmon (github.com/devzero-inc/zxporter) gives its healthy components: monitor
 * after a collect, dakr_transport when created and after each flush, ebpf_tracer when loaded, pod_cache
 * once its informer synced or when there is no cluster to watch. The control plane sees these texts.
 */
export const HEALTHY_MESSAGE = {
  monitor: 'collecting',
  transportCreated: 'initialized',
  transportFlushed: 'connected',
  ebpfTracer: 'initialized',
  podCache: 'informer synced',
  podCacheStandalone: 'standalone mode',
} as const;

/** ok → HEALTHY, recoverable_error → DEGRADED, permanent/fatal → UNHEALTHY; lifecycle states → UNSPECIFIED. */
export function healthOf(status: ComponentState['status']): HealthStatusValue {
  switch (status) {
    case 'ok':
      return HealthStatus.HEALTHY;
    case 'recoverable_error':
      return HealthStatus.DEGRADED;
    case 'permanent_error':
    case 'fatal_error':
      return HealthStatus.UNHEALTHY;
    default:
      return HealthStatus.UNSPECIFIED;
  }
}

/** `receiver/conntrack@flows`, `processor/delta@flows/cost`, `extension/health_check`. */
export function componentName(c: ComponentState): string {
  const where = c.pipeline ?? c.signal;
  return `${c.kind}/${c.id}${where ? `@${where}` : ''}`;
}

/**
 * The worst status of the components: UNHEALTHY over DEGRADED over HEALTHY. Components in a lifecycle
 * state (starting, stopping) do not count; UNSPECIFIED only when no component has a health yet.
 */
export function overallHealth(statuses: readonly HealthStatusValue[]): HealthStatusValue {
  let worst: HealthStatusValue = HealthStatus.UNSPECIFIED;
  for (const s of statuses) if (s > worst) worst = s;
  return worst;
}

const failing = (c: ComponentState): boolean =>
  c.status === 'recoverable_error' || c.status === 'permanent_error' || c.status === 'fatal_error';

/** A component's last error, only while it is in an error state (a recovered one's is history). */
function currentError(c: ComponentState): string {
  return failing(c) ? (c.lastError ?? '') : '';
}

const typeOf = (c: ComponentState): string => c.id.split('/')[0];

/** What the failing ones among `parts` say: `receiver/conntrack@flows: ENOBUFS; …`. */
function errorsOf(parts: readonly ComponentState[]): string {
  return parts
    .filter(failing)
    .map((c) => `${componentName(c)}: ${currentError(c) || c.status}`)
    .join('; ');
}

/**
 * One zxporter component made of netmon components: the worst status of `parts`; as message the text
 * zxporter gives it when that is HEALTHY, the errors of the failing parts when worse, nothing while every
 * part is starting or stopping; the parts' names in metadata.
 */
function rollUp(name: string, parts: readonly ComponentState[], healthy: string): ComponentHealth {
  const status = overallHealth(parts.map((c) => healthOf(c.status)));
  const message =
    status === HealthStatus.HEALTHY ? healthy : status === HealthStatus.UNSPECIFIED ? '' : errorsOf(parts);
  return { name, status, message, metadata: { components: parts.map(componentName).join(', ') } };
}

/** What the exporter's send queue says about the channel to the control plane. */
export interface TransportState {
  /** The last send failed and nothing was delivered since. */
  failing: boolean;
  lastError?: string;
  /** An interval was closed (sent, or found empty) since the start: zxporter then says "connected". */
  flushed: boolean;
  metadata: Record<string, string>;
}

export interface HeartbeatOptions {
  clusterId: string;
  /** The version reported (client_version). */
  version: string;
  commit: string;
  transport: TransportState;
  /** zxporter: only zxporter-netmon's component names; all: then every netmon component too. */
  components: 'zxporter' | 'all';
  /** The devzero exporter sending this heartbeat: its instances are dakr_transport, not monitor. */
  self: string;
  /** The k8s_metadata extension's mode when it is enabled; undefined without it. */
  podCache?: { standalone: boolean };
}

/** dakr_transport: the send queue's state, and the sending exporter's own instances (worst wins). */
function transport(own: readonly ComponentState[], t: TransportState): ComponentHealth {
  const queue: HealthStatusValue = t.failing ? HealthStatus.DEGRADED : HealthStatus.HEALTHY;
  const status = overallHealth([queue, ...own.map((c) => healthOf(c.status))]);
  let message: string;
  if (t.failing) message = t.lastError || 'sending failed';
  else if (status === HealthStatus.HEALTHY)
    message = t.flushed ? HEALTHY_MESSAGE.transportFlushed : HEALTHY_MESSAGE.transportCreated;
  else message = errorsOf(own);
  return { name: 'dakr_transport', status, message, metadata: t.metadata };
}

/**
 * The ReportHealth request. zxporter-netmon's component names, mapped from netmon's state:
 * - `monitor`: every component no other name stands for (receivers, processors, other exporters and
 *   extensions), as zxporter's monitor is its whole collect-aggregate-enrich loop;
 * - `dakr_transport`: this exporter's sends and its own instances;
 * - `ebpf_tracer`: the dns receiver(s); left out when there is none (zxporter leaves it out without BTF);
 * - `pod_cache`: the k8s_metadata extension; "standalone mode" without it, as zxporter -standalone.
 * With `components: all`, one entry per netmon component instance follows.
 */
export function heartbeatRequest(host: Host, opts: HeartbeatOptions): ReportHealthRequest {
  const all = host.components();
  const isDns = (c: ComponentState) => c.kind === 'receiver' && typeOf(c) === 'dns';
  const isK8s = (c: ComponentState) => c.kind === 'extension' && typeOf(c) === K8S_METADATA;
  const isSelf = (c: ComponentState) => c.kind === 'exporter' && c.id === opts.self;
  const dns = all.filter(isDns);
  const k8s = all.filter(isK8s);
  const components: ComponentHealth[] = [
    rollUp(
      'monitor',
      all.filter((c) => !isDns(c) && !isK8s(c) && !isSelf(c)),
      HEALTHY_MESSAGE.monitor,
    ),
    transport(all.filter(isSelf), opts.transport),
  ];
  if (dns.length > 0) components.push(rollUp('ebpf_tracer', dns, HEALTHY_MESSAGE.ebpfTracer));
  if (k8s.length > 0 && opts.podCache?.standalone !== true) {
    components.push(rollUp('pod_cache', k8s, HEALTHY_MESSAGE.podCache));
  } else {
    components.push({
      name: 'pod_cache',
      status: HealthStatus.HEALTHY,
      message: HEALTHY_MESSAGE.podCacheStandalone,
      metadata: k8s.length > 0 ? { components: k8s.map(componentName).join(', ') } : {},
    });
  }
  if (opts.components === 'all') {
    for (const c of all) {
      components.push({
        name: componentName(c),
        status: healthOf(c.status),
        // Never empty: the error while failing, else the state (ok, starting).
        message: currentError(c) || c.status,
        metadata: {
          status: c.status,
          items_in: String(c.items.in),
          items_out: String(c.items.out),
          items_dropped: String(c.items.dropped),
          items_failed: String(c.items.failed),
        },
      });
    }
  }
  return {
    cluster_id: opts.clusterId || 'unknown',
    operator_type: OperatorType.NETWORK,
    version: opts.version,
    overall_status: overallHealth(components.map((c) => c.status)),
    components,
    uptime_since: timestamp(host.startedAt()),
    commit: opts.commit,
  };
}
