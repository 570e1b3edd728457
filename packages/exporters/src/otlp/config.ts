import {
  duration,
  formatDuration,
  GRANULARITIES,
  type GrpcTargetOptions,
  grpcEndpoint,
  grpcHeaders,
  grpcTarget,
  grpcTls,
  parseGrpcEndpoint,
  retryOnFailureConfig,
  SENDING_QUEUE_DESCRIPTION,
  sendingQueueShape,
} from '@netmon/core';
import { z } from 'zod';
import { flowLabelSelection } from '../series/selection-config.js';

/**
 * The most points one series yields per interval (flows: io ×2, packet.count ×2, cost). Here, not beside the
 * metrics it counts, so the config (and the factory) load without the OpenTelemetry SDK.
 */
export const POINTS_PER_SERIES = 5;

/** How the endpoint and `tls` decide where and how to connect: the Collector's rule. */
export const ENDPOINT_RULE: GrpcTargetOptions = { example: 'otel-collector:4317' };

export const otlpExporterConfig = z
  .strictObject({
    endpoint: grpcEndpoint(ENDPOINT_RULE).describe(
      'The OTLP/gRPC receiver, host:port (e.g. otel-collector:4317, [fd00::1]:4317); required. TLS is decided by `tls` (on unless tls.insecure is true), as in the OpenTelemetry Collector. https://host:port is TLS even with tls.insecure; http://host:port is accepted only with tls.insecure: true. No path: the service path is fixed (`opentelemetry.proto.collector.metrics.v1.MetricsService/Export`).',
    ),
    tls: grpcTls(),
    headers: grpcHeaders().describe(
      'gRPC metadata sent with every request, e.g. `authorization: Bearer <token>` (take the token from the environment with env expansion). Names are lowercase.',
    ),
    compression: z
      .enum(['gzip', 'none'])
      .default('gzip')
      .describe(
        'gzip (the Collector’s default): compress every request (flow metrics shrink about 20× in bench/otlp.mjs). none: send as is. The Collector’s zstd and snappy are not offered (grpc-js has neither).',
      ),
    timeout: duration({ min: 100 })
      .prefault('5s')
      .describe(
        'Deadline of one attempt (the Collector’s default, 5s); an attempt past it fails with DEADLINE_EXCEEDED and is retried.',
      ),
    sending_queue: z
      .strictObject(
        sendingQueueShape({
          defaultSize: 1_000_000,
          size: 'Data points the queue holds (the Collector’s sizer: items; about 13 bytes each plus their series’ attributes): at least max_series × 5, one interval. The default holds 50 intervals at max_series.',
        }),
      )
      .prefault({})
      .describe(SENDING_QUEUE_DESCRIPTION),
    retry_on_failure: retryOnFailureConfig(
      'Retried: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED when the server sends RetryInfo; any other outcome drops the request (counted, reason="rejected"). A RetryInfo delay is waited out before the next attempt, up to max_interval.',
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
    labels: flowLabelSelection,
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
    max_points_per_request: z
      .number()
      .int()
      .min(POINTS_PER_SERIES)
      .default(10_000)
      .describe(
        'Most data points in one request. Independently, a request never exceeds 4,000,000 bytes before compression (gRPC servers refuse messages over 4 MiB by default).',
      ),
  })
  .superRefine((c, ctx) => {
    // The endpoint's own syntax is checked on the field; here, whether it goes with `tls`.
    const target = grpcTarget(c.endpoint, c.tls, ENDPOINT_RULE);
    if (typeof target === 'string' && typeof parseGrpcEndpoint(c.endpoint, ENDPOINT_RULE) !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['endpoint'], message: target });
    }
    // Delta forgets nothing it has not sent: a series forgotten and made again continues where it ended.
    if (c.temporality === 'cumulative' && c.expiration < 2 * c.interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['expiration'],
        message: `with temporality cumulative, expiration (${formatDuration(c.expiration)}) must be at least twice interval (${formatDuration(c.interval)}), i.e. ${formatDuration(2 * c.interval)} or more: a shorter one forgets series that skip a single export (under interval: every series at every export), and each comes back from 0, which the backend reads as a counter reset`,
      });
    }
    const q = c.sending_queue;
    if (q.enabled && q.queue_size < c.max_series * POINTS_PER_SERIES) {
      ctx.addIssue({
        code: 'custom',
        path: ['sending_queue', 'queue_size'],
        message: `queue_size must hold one interval at max_series: at least ${c.max_series * POINTS_PER_SERIES} (max_series × ${POINTS_PER_SERIES} points)`,
      });
    }
  });

export type OtlpExporterConfig = z.output<typeof otlpExporterConfig>;
