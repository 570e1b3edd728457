import { duration, formatDuration, GRANULARITIES, grpcUrl, retryConfig } from '@netmon/core';
import { z } from 'zod';
import { POINTS_PER_SERIES } from './metrics.js';

/** gRPC metadata keys: lowercase HTTP/2 header names; `grpc-` is reserved, `-bin` would need bytes. */
const HEADER_KEY = /^[0-9a-z_.-]+$/;

const endpoint = grpcUrl('http://collector:4317').default('http://localhost:4317');

const tls = z
  .strictObject({
    insecure: z
      .boolean()
      .default(false)
      .describe('Plaintext even when the endpoint says https (the Collector’s `tls.insecure`).'),
    ca_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        'PEM file of the certificate authorities that sign the server’s certificate. Unset: the system roots.',
      ),
    cert_file: z
      .string()
      .min(1)
      .optional()
      .describe('PEM client certificate for mutual TLS (with key_file).'),
    key_file: z.string().min(1).optional().describe('PEM private key of cert_file.'),
    insecure_skip_verify: z
      .boolean()
      .default(false)
      .describe('Accept any server certificate (no chain or host name check). For tests only.'),
  })
  .prefault({})
  .superRefine((t, ctx) => {
    if ((t.cert_file === undefined) !== (t.key_file === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [t.cert_file === undefined ? 'cert_file' : 'key_file'],
        message: 'cert_file and key_file go together (mutual TLS needs both)',
      });
    }
  })
  .describe('TLS towards the endpoint. Relative file paths resolve against the config file.');

export const otlpExporterConfig = z
  .strictObject({
    endpoint: endpoint.describe(
      'The OTLP/gRPC receiver, `http://host:port` (plaintext) or `https://host:port` (TLS). The service path is fixed (`opentelemetry.proto.collector.metrics.v1.MetricsService/Export`).',
    ),
    headers: z
      .record(z.string(), z.string())
      .default({})
      .superRefine((h, ctx) => {
        for (const key of Object.keys(h)) {
          if (!HEADER_KEY.test(key)) {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: 'header names are lowercase letters, digits, "-", "_" and "."',
            });
          } else if (key.startsWith('grpc-') || key.endsWith('-bin')) {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: `"${key}": names starting grpc- are reserved and names ending -bin carry binary values`,
            });
          }
        }
      })
      .describe(
        'gRPC metadata sent with every request, e.g. `authorization: Bearer <token>` (take the token from the environment with env expansion). Names are lowercase.',
      ),
    tls,
    compression: z
      .enum(['gzip', 'none'])
      .default('gzip')
      .describe(
        'gzip: compress every request (flow metrics shrink about 20× in bench/otlp.mjs). none: send as is.',
      ),
    temporality: z
      .enum(['delta', 'cumulative'])
      .default('delta')
      .describe(
        'delta: each point carries what a series added since its previous point. cumulative: each point carries the total since the series appeared (what Prometheus expects; costs the backend nothing to convert).',
      ),
    interval: duration({ min: 100 })
      .prefault('30s')
      .describe('How often the aggregated series are exported (at least 100ms).'),
    granularity: z
      .enum(GRANULARITIES)
      .default('workload')
      .describe(
        'Which Kubernetes attributes identify a series: pod (also pod names), workload (kind and name), namespace. Coarser means fewer series at the backend.',
      ),
    max_series: z
      .number()
      .int()
      .min(2)
      .default(20_000)
      .describe(
        'Most series kept; flows of further series go to one series marked otel.metric.overflow=true, so totals stay right.',
      ),
    expiration: duration({ min: 1000 })
      .prefault('5m')
      .describe(
        'A series that received nothing for this long is forgotten (a cumulative one restarts from 0). With `temporality: cumulative` at least twice `interval`: a shorter one forgets series that skip a single export, and each restart from 0 is a counter reset to the backend.',
      ),
    resource: z
      .record(z.string().min(1), z.string())
      .default({})
      .describe(
        'Resource attributes, over the ones found (k8s.node.name, cloud.provider, cloud.region, cloud.availability_zone from the k8s_metadata extension; k8s.cluster.name from the CLUSTER_NAME environment variable). Set k8s.cluster.name here when CLUSTER_NAME is not set; an empty value removes an attribute.',
      ),
    queue_size: z
      .number()
      .int()
      .min(1)
      .default(1_000_000)
      .describe(
        'Data points waiting to be sent (about 13 bytes each plus their series’ attributes). When the backend is down longer than this lasts, the oldest requests are dropped and counted.',
      ),
    timeout: duration({ min: 100 })
      .prefault('10s')
      .describe('Deadline of one request; a request past it counts as failed and is retried.'),
    max_points_per_request: z
      .number()
      .int()
      .min(POINTS_PER_SERIES)
      .default(10_000)
      .describe(
        'Most data points in one request. Independently, a request never exceeds 4,000,000 bytes before compression (gRPC servers refuse messages over 4 MiB by default).',
      ),
    retry: retryConfig(
      'Retried: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED when the server sends RetryInfo; any other outcome drops the request (counted). A RetryInfo delay is waited out before the next attempt, up to max_interval.',
    ),
  })
  .superRefine((c, ctx) => {
    // Delta forgets nothing it has not sent: a series forgotten and made again continues where it ended.
    if (c.temporality === 'cumulative' && c.expiration < 2 * c.interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['expiration'],
        message: `with temporality cumulative, expiration (${formatDuration(c.expiration)}) must be at least twice interval (${formatDuration(c.interval)}), i.e. ${formatDuration(2 * c.interval)} or more: a shorter one forgets series that skip a single export (under interval: every series at every export), and each comes back from 0, which the backend reads as a counter reset`,
      });
    }
    if (c.queue_size < c.max_series * POINTS_PER_SERIES) {
      ctx.addIssue({
        code: 'custom',
        path: ['queue_size'],
        message: `queue_size must hold one interval at max_series: at least ${c.max_series * POINTS_PER_SERIES} (max_series × ${POINTS_PER_SERIES} points)`,
      });
    }
  });

export type OtlpExporterConfig = z.output<typeof otlpExporterConfig>;
