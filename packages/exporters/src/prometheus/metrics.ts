// The exporter's own self-metrics, declared here so the factory can list them without loading the
// endpoint (node:http, zlib) before a config uses this exporter.
import { defineMetrics, serverTlsMetrics } from '@netmon/core';

const TABLE = 'the series table: flows (label sets of netmon_flow_*), cross_zone or dns';

export const PROMETHEUS_METRICS = defineMetrics({
  // Only with `tls` set: TLS handshakes and certificate reloads.
  ...serverTlsMetrics('netmon_prometheus'),
  series: {
    name: 'netmon_prometheus_series',
    kind: 'gauge',
    unit: '{series}',
    description:
      'Series the prometheus exporter holds, by table: flows (label sets of netmon_flow_*), cross_zone, dns.',
    attributes: { table: TABLE },
  },
  overflowRows: {
    name: 'netmon_prometheus_overflow_rows',
    kind: 'counter',
    unit: '{row}',
    description:
      'Rows summed into the overflow series (otel_metric_overflow="true") because max_series was reached, by table.',
    attributes: { table: TABLE },
  },
  removedSeries: {
    name: 'netmon_prometheus_removed_series',
    kind: 'counter',
    unit: '{series}',
    description: 'Series removed, by table and reason: expired (not updated within expiration), pod_deleted.',
    attributes: {
      table: TABLE,
      reason:
        'expired (not updated within expiration) or pod_deleted (the k8s_metadata store deleted the pod)',
    },
  },
  scrapes: {
    name: 'netmon_prometheus_scrapes',
    kind: 'counter',
    unit: '{scrape}',
    description: 'Scrapes of /metrics sent to the end.',
  },
  abortedScrapes: {
    name: 'netmon_prometheus_aborted_scrapes',
    kind: 'counter',
    unit: '{scrape}',
    description:
      'Scrapes of /metrics that ended before their last byte: the scraper hung up, or the scrape was cut off at its deadline (the scraper’s X-Prometheus-Scrape-Timeout-Seconds, at most 2 minutes).',
  },
  scrapeDuration: {
    name: 'netmon_prometheus_scrape_duration_seconds',
    kind: 'gauge',
    unit: 's',
    description:
      'Time the last completed scrape took, from the request to its last byte handed to the socket: sweep, rendering, compression and sending.',
  },
  scrapeSize: {
    name: 'netmon_prometheus_scrape_size_bytes',
    kind: 'gauge',
    unit: 'By',
    description: 'Uncompressed size of the last completed scrape.',
  },
  droppedConnections: {
    name: 'netmon_prometheus_dropped_connections',
    kind: 'counter',
    unit: '{connection}',
    description:
      'Connections to the metrics endpoint the exporter closed, by reason: max_connections (a new one refused on arrival: max_connections were open, each with a response in progress), evicted_idle (the one idle longest, closed to admit a new one when max_connections were open), pipelining (more than 16 requests waited on it for the responses before them).',
    attributes: {
      reason:
        'max_connections (a new connection refused: max_connections were open, none idle), evicted_idle (an idle connection closed to admit a new one) or pipelining (more than 16 requests waited on the connection)',
    },
  },
});
