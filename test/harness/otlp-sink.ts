// An OTLP/gRPC metrics receiver for tests: a @grpc/grpc-js server with a raw service definition (the
// method path, identity (de)serializers), decoding every request with protobufjs and the protocol's own
// schema (otlp-metrics.proto beside this file), independent of the exporter's encoder. It can refuse calls
// (UNAVAILABLE or any code) for the next N calls or for a while, and records what it accepted.
import type { Http2Server, IncomingHttpHeaders } from 'node:http2';
import { fileURLToPath } from 'node:url';
import {
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import protobuf from 'protobufjs';

export const EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';

const ExportRequest = protobuf
  .loadSync(fileURLToPath(new URL('otlp-metrics.proto', import.meta.url)))
  .lookupType('otlp.ExportMetricsServiceRequest');

type AttrValue = string | number | boolean;

interface DecodedAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
}
interface DecodedKeyValue {
  key: string;
  value?: DecodedAnyValue;
}
interface DecodedPoint {
  attributes?: DecodedKeyValue[];
  startTimeUnixNano?: string;
  timeUnixNano?: string;
  asInt?: string;
  asDouble?: number;
}
interface DecodedHistogramPoint {
  attributes?: DecodedKeyValue[];
  startTimeUnixNano?: string;
  timeUnixNano?: string;
  count?: string;
  sum?: number;
  bucketCounts?: string[];
  explicitBounds?: number[];
}
interface DecodedMetric {
  name: string;
  description?: string;
  unit?: string;
  sum?: { dataPoints?: DecodedPoint[]; aggregationTemporality?: string; isMonotonic?: boolean };
  histogram?: { dataPoints?: DecodedHistogramPoint[]; aggregationTemporality?: string };
}
/** ExportMetricsServiceRequest as protobufjs' toObject gives it (longs as strings, enums as names). */
export interface DecodedRequest {
  resourceMetrics?: {
    resource?: { attributes?: DecodedKeyValue[] };
    scopeMetrics?: { scope?: { name?: string; version?: string }; metrics?: DecodedMetric[] }[];
  }[];
}

/** One request as the sink accepted it. */
export interface SinkRequest {
  /** Size of the protobuf message after decompression. */
  bytes: number;
  /** The grpc-encoding the client declared (gzip, identity), if any. */
  encoding: string | undefined;
  /** Custom metadata (headers) of the call. */
  metadata: Record<string, string>;
  decoded: DecodedRequest;
}

/** A data point, flattened with everything that identifies it. */
export interface SinkPoint {
  request: number;
  resource: Record<string, AttrValue>;
  scope: string;
  metric: string;
  unit: string;
  temporality: 'delta' | 'cumulative' | 'unspecified';
  monotonic: boolean;
  attributes: Record<string, AttrValue>;
  /** ns since the epoch. */
  start: bigint;
  end: bigint;
  /** A sum's value; a histogram's count. */
  value: number;
  /** Histograms only: the sum, the explicit bounds and the count per bucket (one more than bounds). */
  histogram?: { sum: number; bounds: number[]; counts: number[] };
}

function anyValue(v: DecodedAnyValue | undefined): AttrValue {
  if (v?.stringValue !== undefined) return v.stringValue;
  if (v?.boolValue !== undefined) return v.boolValue;
  if (v?.intValue !== undefined) return Number(v.intValue);
  if (v?.doubleValue !== undefined) return v.doubleValue;
  return '';
}

export function attributes(kvs: DecodedKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

export function decodeRequest(buf: Uint8Array): DecodedRequest {
  return ExportRequest.toObject(ExportRequest.decode(buf), {
    longs: String,
    enums: String,
    arrays: true,
  }) as DecodedRequest;
}

export interface FailureRule {
  code: number;
  details: string;
  /** Trailers sent with the error (e.g. grpc-status-details-bin carrying RetryInfo). */
  trailers?: Metadata;
  /** Calls still to refuse (count rule), or the time until which every call is refused (window rule). */
  remaining?: number;
  until?: number;
  /** A window that opens with the next call: its length in ms (until is set then). */
  window?: number;
}

export class OtlpSink {
  readonly requests: SinkRequest[] = [];
  /** Calls answered with an error. */
  refused = 0;
  /** Data points in the accepted requests (cheap to poll, unlike points()). */
  pointCount = 0;
  private rule?: FailureRule;
  private readonly encodings: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly tls: boolean,
  ) {}

  /**
   * Starts a sink on 127.0.0.1 (an ephemeral port unless given). `maxReceiveBytes` raises (or lowers) the
   * gRPC default of 4 MiB; leave it unset to check that requests fit the default. With `tls` it serves
   * TLS (and requires a client certificate signed by `clientCa` when given).
   */
  static async start(
    opts: {
      maxReceiveBytes?: number;
      port?: number;
      tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
    } = {},
  ): Promise<OtlpSink> {
    const options: Record<string, number> = {};
    if (opts.maxReceiveBytes !== undefined) options['grpc.max_receive_message_length'] = opts.maxReceiveBytes;
    const server = new Server(options);
    let sink: OtlpSink | undefined;
    server.addService(
      {
        export: {
          path: EXPORT_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
          sink?.handle(call, callback),
      },
    );
    const tls = opts.tls;
    const credentials = tls
      ? ServerCredentials.createSsl(
          tls.clientCa ?? null,
          [{ cert_chain: tls.cert, private_key: tls.key }],
          tls.clientCa !== undefined,
        )
      : ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, credentials, (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    sink = new OtlpSink(server, port, tls !== undefined);
    sink.watchEncodings();
    return sink;
  }

  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Refuses the next `n` calls with `code` (UNAVAILABLE by default). */
  failNext(
    n: number,
    code: number = status.UNAVAILABLE,
    details = 'sink says no',
    trailers?: Metadata,
  ): void {
    this.rule = { code, details, remaining: n, trailers };
  }

  /** Refuses every call for `ms` from now, or from the next call with `fromNextCall`. */
  failFor(
    ms: number,
    code: number = status.UNAVAILABLE,
    details = 'sink is down',
    opts: { fromNextCall?: boolean } = {},
  ): void {
    this.rule = opts.fromNextCall ? { code, details, window: ms } : { code, details, until: Date.now() + ms };
  }

  /** Accepts every call again. */
  recover(): void {
    this.rule = undefined;
  }

  /** Every data point of every accepted request, in arrival order. */
  points(): SinkPoint[] {
    const out: SinkPoint[] = [];
    this.requests.forEach((r, request) => {
      for (const rm of r.decoded.resourceMetrics ?? []) {
        const resource = attributes(rm.resource?.attributes);
        for (const sm of rm.scopeMetrics ?? []) {
          for (const m of sm.metrics ?? []) {
            const t = m.sum?.aggregationTemporality ?? m.histogram?.aggregationTemporality;
            const temporality =
              t === 'AGGREGATION_TEMPORALITY_DELTA'
                ? 'delta'
                : t === 'AGGREGATION_TEMPORALITY_CUMULATIVE'
                  ? 'cumulative'
                  : 'unspecified';
            for (const p of m.sum?.dataPoints ?? []) {
              out.push({
                request,
                resource,
                scope: sm.scope?.name ?? '',
                metric: m.name,
                unit: m.unit ?? '',
                temporality,
                monotonic: m.sum?.isMonotonic ?? false,
                attributes: attributes(p.attributes),
                start: BigInt(p.startTimeUnixNano ?? '0'),
                end: BigInt(p.timeUnixNano ?? '0'),
                value: p.asInt !== undefined ? Number(p.asInt) : (p.asDouble ?? 0),
              });
            }
            for (const p of m.histogram?.dataPoints ?? []) {
              out.push({
                request,
                resource,
                scope: sm.scope?.name ?? '',
                metric: m.name,
                unit: m.unit ?? '',
                temporality,
                monotonic: false,
                attributes: attributes(p.attributes),
                start: BigInt(p.startTimeUnixNano ?? '0'),
                end: BigInt(p.timeUnixNano ?? '0'),
                value: Number(p.count ?? '0'),
                histogram: {
                  sum: p.sum ?? 0,
                  bounds: p.explicitBounds ?? [],
                  counts: (p.bucketCounts ?? []).map(Number),
                },
              });
            }
          }
        }
      }
    });
    return out;
  }

  async waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`sink: condition not met within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.tryShutdown(() => resolve());
      // Connections a client keeps open would hold tryShutdown; nothing in a test needs them after close.
      setTimeout(() => this.server.forceShutdown(), 200).unref();
    });
  }

  private handle(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const encoding = this.encodings.shift();
    const rule = this.rule;
    if (rule?.window !== undefined && rule.until === undefined) rule.until = Date.now() + rule.window;
    if (rule) {
      const active = rule.until !== undefined ? Date.now() < rule.until : (rule.remaining ?? 0) > 0;
      if (active) {
        if (rule.remaining !== undefined) rule.remaining--;
        this.refused++;
        callback({ code: rule.code, details: rule.details, metadata: rule.trailers ?? new Metadata() });
        return;
      }
      this.rule = undefined;
    }
    const metadata: Record<string, string> = {};
    for (const [key, value] of Object.entries(call.metadata.getMap())) metadata[key] = String(value);
    const decoded = decodeRequest(call.request);
    for (const rm of decoded.resourceMetrics ?? [])
      for (const sm of rm.scopeMetrics ?? [])
        for (const m of sm.metrics ?? [])
          this.pointCount += (m.sum?.dataPoints?.length ?? 0) + (m.histogram?.dataPoints?.length ?? 0);
    this.requests.push({ bytes: call.request.length, encoding, metadata, decoded });
    callback(null, Buffer.alloc(0));
  }

  /**
   * grpc-js hides grpc-encoding from handlers, so the sink peeks at the HTTP/2 streams of its own server
   * (a private field of grpc-js 1.14) and pairs them with calls in arrival order: enough for tests, which
   * send one request at a time.
   */
  private watchEncodings(): void {
    const servers = (this.server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
    for (const s of servers?.keys() ?? []) {
      s.prependListener('stream', (_stream: unknown, headers: IncomingHttpHeaders) => {
        if (headers[':path'] === EXPORT_PATH)
          this.encodings.push(String(headers['grpc-encoding'] ?? 'identity'));
      });
    }
  }
}
