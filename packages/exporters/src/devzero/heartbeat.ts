// The ReportHealth request: every netmon component's status, as zxporter's heartbeat reports its own.
import type { ComponentState, Host } from '@netmon/core';
import {
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

export function heartbeatRequest(
  host: Host,
  opts: { clusterId: string; version: string; commit: string },
): ReportHealthRequest {
  const components = host.components().map((c) => ({
    name: componentName(c),
    status: healthOf(c.status),
    message: c.lastError ?? '',
    metadata: {
      status: c.status,
      items_in: String(c.items.in),
      items_out: String(c.items.out),
      items_dropped: String(c.items.dropped),
      items_failed: String(c.items.failed),
    },
  }));
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
