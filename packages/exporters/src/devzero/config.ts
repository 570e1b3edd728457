import {
  duration,
  type GrpcTarget,
  type GrpcTargetOptions,
  grpcHeaders,
  grpcTarget,
  grpcTls,
  retryOnFailureConfig,
  SENDING_QUEUE_DESCRIPTION,
  sendingQueueShape,
} from '@netmon/core';
import { z } from 'zod';

/**
 * The newest zxporter-netmon release: the chart and image are 0.1.6 at devzero-inc/zxporter's v0.1.7
 * release (https://github.com/devzero-inc/zxporter). The control plane sees this in x-client,
 * x-operator-version, operator_version and the heartbeat's version; netmon's own version (0.1.x, lower)
 * would read as an outdated agent.
 */
export const DEFAULT_CLIENT_VERSION = '0.1.6';

/**
 * How the endpoint and `tls` decide where and how to connect: host:port as in the Collector (TLS unless
 * tls.insecure), and zxporter-netmon's DAKR_URL form, a URL whose scheme decides (https:// TLS, http://
 * plaintext; default ports 443 and 80), so existing installs work unchanged.
 */
export const ENDPOINT_RULE: GrpcTargetOptions = {
  example: 'dakr.devzero.io:443 or https://dakr.devzero.io',
  defaultPorts: true,
  schemeDecides: true,
};

/** The headers the exporter sets itself (zxporter-netmon's five); `headers` may not replace them. */
export const IDENTITY_HEADERS = [
  'authorization',
  'x-client',
  'x-operator-type',
  'x-operator-version',
  'x-operator-git-sha',
] as const;

/** Where the exporter connects and whether over TLS; a string is the reason it cannot. */
export function dakrTarget(config: Pick<DevzeroExporterConfig, 'endpoint' | 'tls'>): GrpcTarget | string {
  return grpcTarget(config.endpoint, config.tls, ENDPOINT_RULE);
}

export const devzeroExporterConfig = z
  .strictObject({
    endpoint: z
      .string()
      .default('')
      .describe(
        'The DevZero control plane ("dakr"): host:port (e.g. dakr.devzero.io:443), TLS decided by `tls` as in the OpenTelemetry Collector (on unless tls.insecure is true); or zxporter-netmon\'s DAKR_URL form, a URL whose scheme decides, https://dakr.devzero.io (TLS, port 443 unless given) or http://host:port (plaintext gRPC), whatever tls.insecure says. No path. Empty, or set without a token: local only, nothing is sent and the interval is only visible at GET /metrics on the health_check port.',
      ),
    tls: grpcTls(
      ' An endpoint written as a URL (the DAKR_URL form) is decided by its scheme instead: http:// plaintext, https:// TLS.',
    ),
    token: z
      .string()
      .default('')
      .describe(
        'The cluster token, sent as "authorization: Bearer <token>" (CLUSTER_TOKEN of zxporter-netmon). Empty: local only, even with an endpoint (as zxporter-netmon, which creates its client only with both; the start log warns), so a token-less install never sends unauthenticated requests.',
      ),
    cluster_id: z
      .string()
      .default('')
      .describe(
        'The cluster id reported in heartbeats (CLUSTER_ID); empty reports "unknown", as zxporter does.',
      ),
    node_name: z
      .string()
      .default('')
      .describe(
        "This node's name, sent with every request and in GET /metrics. Empty: the NODE_NAME environment variable, else the host name.",
      ),
    client_version: z
      .string()
      .regex(/^\d+\.\d+\.\d+$/, 'a version x.y.z, e.g. 0.1.6')
      .default(DEFAULT_CLIENT_VERSION)
      .describe(
        `The zxporter-netmon version netmon reports to the control plane: in the x-client ("zxporter/<version>") and x-operator-version headers, operator_version and the heartbeat's version. Default: the newest zxporter-netmon release, ${DEFAULT_CLIENT_VERSION}; netmon's own version number would read as an older agent. Raise it when DevZero expects a newer one.`,
      ),
    heartbeat_components: z
      .enum(['zxporter', 'all'])
      .default('zxporter')
      .describe(
        "What ReportHealth lists. zxporter: only zxporter-netmon's components (monitor, dakr_transport, ebpf_tracer when a dns receiver runs, pod_cache), each the worst status of the netmon components it stands for, as zxporter-netmon reports. all: those, then one entry per netmon component instance with its status and item counters.",
      ),
    flush_interval: duration({ min: 100 })
      .prefault('60s')
      .describe(
        'How often the interval is closed and sent: flows summed per (src IP, dst IP, dst port, protocol) and the DNS lookups since the previous flush (FLUSH_INTERVAL; at least 100ms).',
      ),
    heartbeat_interval: duration({ min: 100 })
      .prefault('60s')
      .describe(
        'How often ReportHealth tells the control plane how every component is doing (also once at start).',
      ),
    timeout: duration({ min: 100 })
      .prefault('120s')
      .describe(
        "Deadline of one gRPC call (a send or a heartbeat). 120s, zxporter-netmon's HTTP timeout, where the Collector's default is 5s: the control plane is known to take that long, and each timed-out send is retried.",
      ),
    compression: z
      .enum(['gzip', 'none'])
      .default('gzip')
      .describe(
        'gzip: as zxporter-netmon, calls carry grpc-encoding: gzip and a message of 1024 bytes or more is gzipped (smaller ones are not). none: nothing is compressed.',
      ),
    headers: grpcHeaders(
      IDENTITY_HEADERS,
      ' (token, client_version and NETMON_GIT_SHA set them, as zxporter-netmon sends them)',
    ).describe(
      "More gRPC metadata sent with every call (a send or a heartbeat), e.g. for a proxy in between. Names are lowercase; the identity headers (authorization, x-client, x-operator-type, x-operator-version, x-operator-git-sha) are the exporter's.",
    ),
    sending_queue: z
      .strictObject({
        ...sendingQueueShape({
          defaultSize: 100_000,
          size: 'Flows and lookups the queue holds while the control plane cannot be reached (the Collector’s sizer: items); at least max_items_per_interval, one interval, so nothing is lost with a healthy control plane.',
        }),
        directory: z
          .string()
          .optional()
          .describe(
            'Directory the queue is saved in (<directory>/<id>.queue.json, written atomically whenever the queue changes and at shutdown, with the IP → domain cache) and restored from at start, so a restart during an outage loses nothing. A relative path resolves against the config file; created if missing. Unset or empty: in memory only. Needs enabled: true.',
          ),
      })
      .prefault({})
      .describe(SENDING_QUEUE_DESCRIPTION),
    retry_on_failure: retryOnFailureConfig(
      'Retried: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (unless the message is too large), UNKNOWN, CANCELLED, ABORTED, as zxporter-netmon; any other code is a rejection and drops the request (counted, reason="rejected"). Heartbeats are never retried.',
    ),
    max_items_per_interval: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(50_000)
      .describe(
        'Most flows plus DNS lookups one interval holds. An interval that reaches it is closed early and queued like any other (nothing is dropped; counted in netmon_devzero_early_flushes), so a port scan or a DNS flood cannot grow memory without bound.',
      ),
    max_items_per_request: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(10_000)
      .describe(
        'Most flows plus lookups in one request; a larger interval is split into several requests. Requests are also kept under about 3 MiB of protobuf, below the 4 MiB many gRPC servers accept.',
      ),
    ip2domain_max_entries: z
      .number()
      .int()
      .min(0)
      .max(50_000)
      .default(10_000)
      .describe(
        'Most IP → domain entries learnt from DNS answers (kept for their TTL, at least until the interval that saw them is sent). Each request carries the names of its own addresses and the most recently learnt entries that fit its size budget (about 256 KiB), not the whole cache. Past it the entry learnt longest ago makes room.',
      ),
  })
  .superRefine((c, ctx) => {
    if (c.endpoint !== '') {
      const target = dakrTarget(c);
      if (typeof target === 'string') ctx.addIssue({ code: 'custom', path: ['endpoint'], message: target });
    }
    const q = c.sending_queue;
    if (q.enabled && q.queue_size < c.max_items_per_interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['sending_queue', 'queue_size'],
        message: `queue_size (${q.queue_size}) must hold one whole interval: at least max_items_per_interval (${c.max_items_per_interval} flows and lookups); a smaller queue would drop data with a healthy control plane`,
      });
    }
    if (!q.enabled && q.directory) {
      ctx.addIssue({
        code: 'custom',
        path: ['sending_queue', 'directory'],
        message:
          'directory saves the queue, and sending_queue::enabled is false: set enabled: true, or remove directory',
      });
    }
  });

export type DevzeroExporterConfig = z.output<typeof devzeroExporterConfig>;
