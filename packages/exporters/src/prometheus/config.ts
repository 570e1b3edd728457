import { duration, endpoint, GRANULARITIES, serverTls } from '@netmon/core';
import { z } from 'zod';
import { flowLabelSelection } from '../series/selection-config.js';

/** The shortest expiration: Prometheus' default scrape interval (see the key's description). */
export const MIN_EXPIRATION_MS = 60_000;

export const prometheusExporterConfig = z.strictObject({
  endpoint: endpoint('127.0.0.1:9464').describe(
    'Address to serve the metrics on (host:port; port 0 picks a free one, logged at start); Prometheus scrapes http://<host>:<port>/metrics. The default, 127.0.0.1, answers only on this machine; "0.0.0.0:9464", "[::]:9464" or ":9464" listen on every interface, where anyone who reaches the port reads the metrics without authentication (logged at start), and the shipped Kubernetes pipeline listens on the pod’s address, where Prometheus scrapes it.',
  ),
  tls: serverTls(),
  granularity: z
    .enum(GRANULARITIES)
    .default('workload')
    .describe(
      'Kubernetes labels of the flow and DNS series: `workload` (the default) keeps src_/dst_ namespace and workload (kind and name); `pod` adds the pod names, a series per pair of pods, which every rollout renews; `namespace` drops the workloads too. Coarser means far fewer series. `labels` adds or removes flow labels on top. pod_cross_zone_network_traffic_bytes_total always has namespace and pod (as kubezonnet).',
    ),
  labels: flowLabelSelection,
  max_series: z
    .number()
    .int()
    .min(2)
    .max(10_000_000)
    .default(10_000)
    .describe(
      'Most series per table: flow label sets (each gives a tx and an rx series of bytes and packets, and a cost series), cross-zone pods, DNS label sets. Past it, new label sets are summed into one series labelled otel_metric_overflow="true", so totals stay right; the rows are counted in netmon_prometheus_overflow_rows_total.',
    ),
  expiration: duration({ min: MIN_EXPIRATION_MS })
    .prefault('5m')
    .describe(
      'Series not updated for this long are removed (a counter that comes back starts again from 0, which Prometheus reads as a reset). At least 1m: a series must outlive the time until the next scrape, or the bytes it counted since the previous one are never seen; Prometheus scrapes every 15–60 s (its default is 1m), so keep this at several scrape intervals.',
    ),
  max_connections: z
    .number({ error: 'expected a whole number of connections, 1 – 65535' })
    .int({ error: 'expected a whole number of connections, 1 – 65535' })
    .min(1, { error: 'expected at least 1 connection' })
    .max(65_535, { error: 'expected at most 65535 connections' })
    .default(16)
    .describe(
      'Most connections open to the endpoint at once. Prometheus uses one per target (an HA pair two). When a new connection would pass it, the connection idle longest (kept alive between scrapes, or with no request yet) is closed to admit it (netmon_prometheus_dropped_connections_total{reason="evicted_idle"}); when every open connection has a response in progress, the new one is closed as soon as it is accepted (reason="max_connections"). Each connection has at most one response in progress, so this bounds what scrapers can make the agent hold.',
    ),
  self_metrics: z
    .boolean()
    .default(true)
    .describe(
      'Also serve the agent’s own metrics (netmon_*: items per component, queues, event-loop lag, memory, CPU, each component’s metrics).',
    ),
});

export type PrometheusExporterConfig = z.output<typeof prometheusExporterConfig>;
