// The dakr messages as plain objects, and their serializers from dakr.proto (loaded once, at first use).
import { fileURLToPath } from 'node:url';
import { loadSync, type MethodDefinition, type Options } from '@grpc/proto-loader';
import protobuf from 'protobufjs';

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

/**
 * The two RPCs' serializers and paths, from dakr.proto. Requests are serialized as Go writes them: a
 * proto3 scalar field holding its default value is left out (see `omitDefaults`).
 */
export function dakrMethods(): DakrMethods {
  if (!methods) {
    const def = loadSync(DAKR_PROTO, PROTO_LOADER_OPTIONS);
    const metrics = def['api.v1.MetricsCollectorService'] as Record<string, MethodDefinition<object, object>>;
    const health = def['api.v1.OperatorHealthService'] as Record<string, MethodDefinition<object, object>>;
    const types = dakrTypes();
    methods = {
      sendTraffic: goWire(
        metrics.SendNetworkTrafficMetrics as DakrMethods['sendTraffic'],
        types.lookupType('api.v1.SendNetworkTrafficMetricsRequest'),
      ),
      reportHealth: goWire(
        health.ReportHealth as DakrMethods['reportHealth'],
        types.lookupType('api.v1.ReportHealthRequest'),
      ),
    };
  }
  return methods;
}

let root: protobuf.Root | undefined;

/** dakr.proto as protobufjs reflection, for what proto-loader does not expose: which fields have presence. */
function dakrTypes(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    // google/protobuf/timestamp.proto comes from protobufjs' bundled well-known types.
    root.loadSync(DAKR_PROTO, { keepCase: true });
    root.resolveAll();
  }
  return root;
}

function goWire<Req, Res>(
  method: MethodDefinition<Req, Res>,
  type: protobuf.Type,
): MethodDefinition<Req, Res> {
  const serialize = method.requestSerialize;
  return { ...method, requestSerialize: (req: Req) => serialize(omitDefaults(type, req) as Req) };
}

/** proto3's default of a scalar or enum field: what Go's marshaller leaves out for a field without presence. */
function isDefault(v: unknown): boolean {
  return v === '' || v === 0 || v === false || v === 0n || (v instanceof Uint8Array && v.length === 0);
}

/**
 * A copy of `value` without the scalar and enum fields that hold their proto3 default. protobufjs writes
 * every field that is set, defaults included (cluster_id "", dst_port 0, nanos 0), where Go's
 * protobuf-go, which the control plane's own agent uses, writes none of them: left in, the bytes would
 * differ from zxporter-netmon's for the same content. Fields declared `optional` (operator_version,
 * operator_commit) have presence and are kept whatever they hold, as Go keeps a set pointer; messages are
 * kept even when empty (Go writes a non-nil message), repeated fields and map entries as they are (Go
 * writes a map entry's key and value even when empty, as protobufjs does).
 */
export function omitDefaults(type: protobuf.Type, value: unknown): Record<string, unknown> {
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const v = src[field.name];
    if (v === undefined || v === null) continue;
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (field.map) {
      if (!sub) {
        out[field.name] = v;
        continue;
      }
      const entries: Record<string, unknown> = {};
      for (const [k, e] of Object.entries(v as Record<string, unknown>)) entries[k] = omitDefaults(sub, e);
      out[field.name] = entries;
    } else if (field.repeated) {
      out[field.name] = sub ? (v as unknown[]).map((e) => omitDefaults(sub, e)) : v;
    } else if (sub) {
      out[field.name] = omitDefaults(sub, v);
    } else if (field.hasPresence || !isDefault(v)) {
      out[field.name] = v;
    }
  }
  return out;
}

/** ms since the epoch as a google.protobuf.Timestamp. */
export function timestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}
