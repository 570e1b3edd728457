// The dakr messages as plain objects, and their serializers from dakr.proto (loaded once, at first use).
import { fileURLToPath } from 'node:url';
import { loadSync, type MethodDefinition, type Options } from '@grpc/proto-loader';

/**
 * dakr.proto is a data file kept in src/: both src/devzero/ (tests run the sources) and dist/devzero/
 * (the built agent) are two levels below the package, so one relative path finds it from either, and the
 * published package ships it (`files` includes src).
 */
export const DAKR_PROTO = fileURLToPath(new URL('../../src/devzero/dakr.proto', import.meta.url));

/**
 * How every netmon part (exporter, stand-in, tests) reads dakr messages: field names as in the .proto,
 * 64-bit integers as JS numbers (counters are float64 in FlowBatch already, exact to 2^53), enums as
 * numbers, defaults filled in.
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: Number,
  defaults: true,
  oneofs: true,
};

export const SEND_TRAFFIC_PATH = '/api.v1.MetricsCollectorService/SendNetworkTrafficMetrics';
export const REPORT_HEALTH_PATH = '/api.v1.OperatorHealthService/ReportHealth';

export const OperatorType = { NETWORK: 5 } as const;
export const HealthStatus = { UNSPECIFIED: 0, HEALTHY: 1, DEGRADED: 2, UNHEALTHY: 3 } as const;
export type HealthStatusValue = (typeof HealthStatus)[keyof typeof HealthStatus];

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface NetworkTrafficItem {
  src_ip: string;
  dst_ip: string;
  src_pod_name: string;
  src_pod_namespace: string;
  protocol: number;
  dst_port: number;
  tx_bytes: number;
  rx_bytes: number;
  tx_packets: number;
  rx_packets: number;
  timestamp: Timestamp;
}

export interface DnsLookupItem {
  client_ip: string;
  domain: string;
  resolved_ips: string[];
  timestamp: Timestamp;
  src_pod_name: string;
  src_pod_namespace: string;
}

export interface SendNetworkTrafficMetricsRequest {
  cluster_id: string;
  team_id: string;
  node_name: string;
  items: NetworkTrafficItem[];
  dns_lookups: DnsLookupItem[];
  ip2domain: Record<string, string>;
  operator_version: string;
  operator_commit: string;
}

export interface ComponentHealth {
  name: string;
  status: HealthStatusValue;
  message: string;
  metadata: Record<string, string>;
}

export interface ReportHealthRequest {
  cluster_id: string;
  operator_type: number;
  version: string;
  overall_status: HealthStatusValue;
  components: ComponentHealth[];
  uptime_since: Timestamp;
  commit: string;
}

export interface DakrMethods {
  sendTraffic: MethodDefinition<SendNetworkTrafficMetricsRequest, { processed_count: number }>;
  reportHealth: MethodDefinition<ReportHealthRequest, { collect_now: boolean }>;
}

let methods: DakrMethods | undefined;

/** The two RPCs' serializers and paths, from dakr.proto. */
export function dakrMethods(): DakrMethods {
  if (!methods) {
    const def = loadSync(DAKR_PROTO, PROTO_LOADER_OPTIONS);
    const metrics = def['api.v1.MetricsCollectorService'] as Record<string, MethodDefinition<object, object>>;
    const health = def['api.v1.OperatorHealthService'] as Record<string, MethodDefinition<object, object>>;
    methods = {
      sendTraffic: metrics.SendNetworkTrafficMetrics as DakrMethods['sendTraffic'],
      reportHealth: health.ReportHealth as DakrMethods['reportHealth'],
    };
  }
  return methods;
}

/** ms since the epoch as a google.protobuf.Timestamp. */
export function timestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}
