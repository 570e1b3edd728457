import { duration, type GrpcTarget, parseGrpcUrl, retryConfig } from '@netmon/core';
import { z } from 'zod';

const DAKR_EXAMPLE = 'https://dakr.devzero.io or http://127.0.0.1:9090';

/**
 * The newest zxporter-netmon release (reference §1.1 and §9: chart and image v0.1.6 at the v0.1.7 release
 * of devzero-inc/zxporter). The control plane sees this in x-client, x-operator-version, operator_version
 * and the heartbeat's version; netmon's own version (0.1.x, lower) would read as an outdated agent.
 */
export const DEFAULT_CLIENT_VERSION = '0.1.6';

/** The DAKR URL as grpc-js wants it; a string is the reason it is not one. */
export function parseDakrUrl(text: string): GrpcTarget | string {
  return parseGrpcUrl(text, DAKR_EXAMPLE);
}

export const devzeroExporterConfig = z
  .strictObject({
    endpoint: z
      .string()
      .default('')
      .describe(
        'The DevZero control plane ("dakr") URL, e.g. https://dakr.devzero.io (https:// uses TLS, http:// plaintext gRPC). Empty, or set without a token: local only, nothing is sent and the interval is only visible at GET /metrics on the health_check port.',
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
      .describe("Deadline of one gRPC call (a send or a heartbeat), as zxporter's 120 s HTTP timeout."),
    queue_size: z
      .number()
      .int()
      .min(1)
      .default(100_000)
      .describe(
        'Flows and lookups kept while the control plane cannot be reached (requests waiting to be sent, in items); at least max_items_per_interval. Past it the oldest waiting requests are dropped and counted (never the one in flight, never one of the interval being queued).',
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
    state_dir: z
      .string()
      .optional()
      .describe(
        'Directory the intervals not yet acknowledged are saved in (one JSON file per exporter, written atomically whenever the queue changes and at shutdown) and restored from at start, so a restart during an outage loses nothing. A relative path resolves against the config file. Unset or empty: in memory only.',
      ),
    retry: retryConfig(
      'Retried: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNKNOWN, CANCELLED, ABORTED; any other code is a rejection and drops the request (counted).',
    ),
  })
  .superRefine((c, ctx) => {
    if (c.endpoint !== '') {
      const target = parseDakrUrl(c.endpoint);
      if (typeof target === 'string') ctx.addIssue({ code: 'custom', path: ['endpoint'], message: target });
    }
    if (c.queue_size < c.max_items_per_interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['queue_size'],
        message: `queue_size (${c.queue_size}) must hold one whole interval: at least max_items_per_interval (${c.max_items_per_interval} flows and lookups); a smaller queue would drop data with a healthy control plane`,
      });
    }
  });

export type DevzeroExporterConfig = z.output<typeof devzeroExporterConfig>;
