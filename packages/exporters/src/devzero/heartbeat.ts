// The ReportHealth request: zxporter-netmon's component names mapped from netmon's state, then every
// netmon component's own status.
import type { ComponentState, Host } from '@netmon/core';
import {
  type ComponentHealth,
  HealthStatus,
  type HealthStatusValue,
  OperatorType,
  type ReportHealthRequest,
  timestamp,
} from './proto.js';

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

/** A component's last error, only while it is in an error state (a recovered one's is history). */
function currentError(c: ComponentState): string {
  const failing =
    c.status === 'recoverable_error' || c.status === 'permanent_error' || c.status === 'fatal_error';
  return failing ? (c.lastError ?? '') : '';
}

const typeOf = (c: ComponentState): string => c.id.split('/')[0];

/**
 * One zxporter component made of netmon components: the worst status of `parts`, the current errors of
 * those not healthy as its message, their names in metadata. Undefined when there are none (zxporter
 * leaves out components it did not register).
 */
function rollUp(name: string, parts: readonly ComponentState[]): ComponentHealth | undefined {
  if (parts.length === 0) return undefined;
  const status = overallHealth(parts.map((c) => healthOf(c.status)));
  const errors = parts
    .filter((c) => currentError(c) !== '')
    .map((c) => `${componentName(c)}: ${currentError(c)}`);
  return {
    name,
    status,
    message: errors.join('; '),
    metadata: { components: parts.map(componentName).join(', ') },
  };
}

/** What the exporter's send queue says about the channel to the control plane. */
export interface TransportState {
  /** The last send failed and nothing was delivered since. */
  failing: boolean;
  lastError?: string;
  metadata: Record<string, string>;
}

/**
 * The ReportHealth request. First zxporter-netmon's own component names, mapped from netmon's state —
 * `monitor` (the worst of the receivers), `dakr_transport` (this exporter's sends), `ebpf_tracer` (the
 * dns receiver, when there is one), `pod_cache` (the k8s_metadata extension, when enabled) — then one
 * entry per netmon component instance.
 */
export function heartbeatRequest(
  host: Host,
  opts: { clusterId: string; version: string; commit: string; transport: TransportState },
): ReportHealthRequest {
  const all = host.components();
  const receivers = all.filter((c) => c.kind === 'receiver');
  const zxporter: (ComponentHealth | undefined)[] = [
    rollUp('monitor', receivers),
    {
      name: 'dakr_transport',
      status: opts.transport.failing ? HealthStatus.DEGRADED : HealthStatus.HEALTHY,
      message: opts.transport.failing ? (opts.transport.lastError ?? '') : '',
      metadata: opts.transport.metadata,
    },
    rollUp(
      'ebpf_tracer',
      receivers.filter((c) => typeOf(c) === 'dns'),
    ),
    rollUp(
      'pod_cache',
      all.filter((c) => c.kind === 'extension' && typeOf(c) === 'k8s_metadata'),
    ),
  ];
  const own = all.map(
    (c): ComponentHealth => ({
      name: componentName(c),
      status: healthOf(c.status),
      message: currentError(c),
      metadata: {
        status: c.status,
        items_in: String(c.items.in),
        items_out: String(c.items.out),
        items_dropped: String(c.items.dropped),
        items_failed: String(c.items.failed),
      },
    }),
  );
  const components = [...zxporter.filter((c): c is ComponentHealth => c !== undefined), ...own];
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
