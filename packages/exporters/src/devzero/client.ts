// gRPC to the DevZero control plane ("dakr"), on the wire as zxporter-netmon's connect-go client sends it:
// unary calls to /api.v1.<Service>/<Method>, the same five headers, gzip for messages of 1 KiB and more.
import {
  type CallOptions,
  type ChannelOptions,
  Client,
  type ClientWritableStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import type { GrpcTarget, TlsMaterial } from '@netmon/core';
import {
  dakrMethods,
  REPORT_HEALTH_PATH,
  type ReportHealthRequest,
  SEND_TRAFFIC_PATH,
  type SendNetworkTrafficMetricsRequest,
} from './proto.js';

/** connect-go's WithCompressMinBytes(1024): a message of this size or more is gzipped, smaller ones not. */
export const COMPRESS_MIN_BYTES = 1024;
/** zxporter's WithSendMaxBytes / WithReadMaxBytes. */
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/** grpc-js WriteFlags.NoCompress: this message goes uncompressed though the call uses gzip. */
const NO_COMPRESS = 2;
/** grpc-js compression algorithm key for gzip (CompressionAlgorithms.gzip). */
const GZIP = 2;

/** zxporter's retryable codes (dakr_client.go); any other code is the backend refusing the request. */
const RETRYABLE = new Set<number>([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.UNKNOWN,
  status.CANCELLED,
  status.ABORTED,
]);

/**
 * True when a failed call may succeed later. RESOURCE_EXHAUSTED because the message is larger than the
 * server takes never will: retrying it would block the queue behind it for good.
 */
export function isRetryable(err: unknown): boolean {
  const e = err as Partial<ServiceError>;
  if (typeof e?.code !== 'number') return false;
  if (e.code === status.RESOURCE_EXHAUSTED && /larger than|too large|exceeds/i.test(e.details ?? '')) {
    return false;
  }
  return RETRYABLE.has(e.code);
}

export interface DakrClientOptions {
  target: GrpcTarget;
  /** CA, client certificate and key from the `tls` key, when the target is TLS (unset: system roots). */
  tls?: TlsMaterial;
  /** gzip: zxporter-netmon's rule (messages of COMPRESS_MIN_BYTES and more). none: nothing compressed. */
  compression?: 'gzip' | 'none';
  /** More metadata (`headers`), sent before the identity headers, which it cannot name. */
  headers?: Readonly<Record<string, string>>;
  token: string;
  /** The zxporter-netmon version reported (client_version), x.y.z. */
  version: string;
  /** The commit netmon was built from; empty when unknown (the header is then left out, as zxporter does). */
  commit: string;
  timeoutMs: number;
}

/** What a call rejects with: the gRPC status, and the message with the code's name. */
export class DakrCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    path: string,
  ) {
    super(`${path}: ${status[code] ?? code}: ${details}`);
  }
}

/**
 * One channel to dakr. Calls are client-streaming calls carrying exactly one message: on the wire that is
 * a unary call (HEADERS, one length-prefixed message, END_STREAM; a unary server handler answers it), but
 * unlike grpc-js's unary API it lets each message say whether it is compressed.
 */
export class DakrClient {
  private readonly client: Client;
  private readonly headers: Metadata;
  private readonly active = new Set<ClientWritableStream<Buffer>>();
  /** Serialized (uncompressed) request bytes handed to the channel. */
  sentBytes = 0;

  constructor(opts: DakrClientOptions) {
    const channelOptions: ChannelOptions = {
      // Every message is gzip unless written with NO_COMPRESS; the call carries grpc-encoding: gzip.
      ...(opts.compression === 'none' ? {} : { 'grpc.default_compression_algorithm': GZIP }),
      // Quick recovery after an outage: grpc-js waits up to 120 s between reconnects by default.
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': 5000,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    };
    const m = opts.tls;
    const creds = !opts.target.tls
      ? credentials.createInsecure()
      : credentials.createSsl(
          m?.rootCerts ?? null,
          m?.privateKey ?? null,
          m?.certChain ?? null,
          m?.skipVerify ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : undefined,
        );
    this.client = new Client(opts.target.address, creds, channelOptions);
    this.headers = dakrHeaders(opts);
  }

  sendTraffic(
    request: SendNetworkTrafficMetricsRequest,
    timeoutMs: number,
  ): Promise<{ processed_count: number }> {
    return this.call(dakrMethods().sendTraffic, SEND_TRAFFIC_PATH, request, timeoutMs);
  }

  reportHealth(request: ReportHealthRequest, timeoutMs: number): Promise<{ collect_now: boolean }> {
    return this.call(dakrMethods().reportHealth, REPORT_HEALTH_PATH, request, timeoutMs);
  }

  /**
   * Serializes first, so the size (and with it compression) is known before the call starts. A deadline
   * already past fails the call at once with DEADLINE_EXCEEDED.
   */
  private call<Req, Res>(
    method: MethodDefinition<Req, Res>,
    path: string,
    request: Req,
    timeoutMs: number,
  ): Promise<Res> {
    let bytes: Buffer;
    try {
      bytes = method.requestSerialize(request);
    } catch (err) {
      return Promise.reject(err);
    }
    this.sentBytes += bytes.length;
    return new Promise((resolve, reject) => {
      const options: CallOptions = { deadline: Date.now() + Math.max(0, timeoutMs) };
      const stream = this.client.makeClientStreamRequest<Buffer, Res>(
        path,
        (b: Buffer) => b,
        method.responseDeserialize,
        this.headers.clone(),
        options,
        (err, response) => {
          this.active.delete(stream);
          if (err) reject(new DakrCallError(err.code, err.details, path));
          else resolve(response as Res);
        },
      );
      this.active.add(stream);
      stream.write(bytes, bytes.length >= COMPRESS_MIN_BYTES ? 0 : NO_COMPRESS);
      stream.end();
    });
  }

  /** Cancels every call in flight (they fail with CANCELLED). */
  cancelAll(): void {
    for (const call of this.active) call.cancel();
  }

  close(): void {
    this.client.close();
  }
}

/**
 * The headers zxporter's interceptor sets (dakr_client.go). `x-operator-type` stays "zxporter" and
 * `x-client` "zxporter/<version>": that is what the backend knows and accepts from the network operator
 * today; the heartbeat's operator_type (NETWORK = 5) is what tells it apart from the other operators.
 */
export function dakrHeaders(
  opts: Pick<DakrClientOptions, 'token' | 'version' | 'commit' | 'headers'>,
): Metadata {
  const md = new Metadata();
  for (const [key, value] of Object.entries(opts.headers ?? {})) md.set(key, value);
  if (opts.token !== '') md.set('authorization', `Bearer ${opts.token}`);
  md.set('x-client', `zxporter/${opts.version}`);
  md.set('x-operator-type', 'zxporter');
  md.set('x-operator-version', opts.version);
  if (opts.commit !== '') md.set('x-operator-git-sha', opts.commit);
  return md;
}
