// gRPC specifics of the otlp exporter: where and how to connect (the endpoint and tls keys, read as the
// Collector reads them), metadata from headers, and which failures are worth retrying (OTLP
// specification, "Failures"; the library retries none over gRPC).
import { type ChannelCredentials, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { type GrpcTarget, grpcTarget, readTlsMaterial } from '@netmon/core';
import protobuf from 'protobufjs';
import { ENDPOINT_RULE, type OtlpExporterConfig } from './config.js';

/** Where to connect and whether over TLS (the config was validated, so the endpoint goes with tls). */
export function target(config: OtlpExporterConfig): GrpcTarget {
  const t = grpcTarget(config.endpoint, config.tls, ENDPOINT_RULE);
  if (typeof t === 'string') throw new Error(`otlp exporter: ${t}`);
  return t;
}

/**
 * True when requests go without TLS: `tls.insecure: true` with no `tls.ca_file`, and no https:// in the
 * endpoint (the Collector's rule).
 */
export function plaintext(config: OtlpExporterConfig): boolean {
  return !target(config).tls;
}

/** Channel credentials for the endpoint; reads the TLS files (throws naming the key and file). */
export function channelCredentials(config: OtlpExporterConfig, configDir: string): ChannelCredentials {
  if (plaintext(config)) return credentials.createInsecure();
  const m = readTlsMaterial(config.tls, configDir, 'otlp exporter');
  const verify = m.skipVerify
    ? { rejectUnauthorized: false, checkServerIdentity: () => undefined }
    : undefined;
  return credentials.createSsl(m.rootCerts, m.privateKey, m.certChain, verify);
}

export function metadata(headers: Readonly<Record<string, string>>): Metadata {
  const m = new Metadata();
  for (const [key, value] of Object.entries(headers)) m.set(key, value);
  return m;
}

/** OTLP-retryable codes. RESOURCE_EXHAUSTED only with RetryInfo (see `retryable`). */
const RETRYABLE = new Set<number>([
  status.CANCELLED,
  status.DEADLINE_EXCEEDED,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/** A failed export: the gRPC status when there is one, and whether sending it again may succeed. */
export class ExportError extends Error {
  constructor(
    message: string,
    readonly code: number | undefined,
    readonly retryable: boolean,
    /** How long the server asked the client to wait before retrying (RetryInfo), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ExportError';
  }
}

/** The trailer a gRPC server puts its google.rpc.Status (with details such as RetryInfo) in. */
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const RETRY_INFO = 'google.rpc.RetryInfo';

let rpcTypes: { status: protobuf.Type; retryInfo: protobuf.Type } | undefined;

/** google.rpc.Status and RetryInfo (googleapis google/rpc/status.proto, error_details.proto). */
function types(): { status: protobuf.Type; retryInfo: protobuf.Type } {
  if (!rpcTypes) {
    const root = protobuf.Root.fromJSON({
      nested: {
        google: {
          nested: {
            rpc: {
              nested: {
                Status: {
                  fields: {
                    code: { type: 'int32', id: 1 },
                    message: { type: 'string', id: 2 },
                    details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
                  },
                },
                RetryInfo: { fields: { retry_delay: { type: 'google.protobuf.Duration', id: 1 } } },
              },
            },
            protobuf: {
              nested: {
                Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
                Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
              },
            },
          },
        },
      },
    });
    rpcTypes = {
      status: root.lookupType('google.rpc.Status'),
      retryInfo: root.lookupType('google.rpc.RetryInfo'),
    };
  }
  return rpcTypes;
}

/**
 * The retry delay a server put in its status details (google.rpc.Status → details → google.rpc.RetryInfo
 * → retry_delay), in ms; undefined when there is none, or the bytes are not a Status. An Any is matched
 * on the type name after the last "/" of its URL, as every googleapis client does.
 */
export function retryDelayMs(details: Buffer | Uint8Array | undefined): number | undefined {
  if (!details || details.length === 0) return undefined;
  const { status: Status, retryInfo: RetryInfo } = types();
  try {
    const decoded = Status.toObject(Status.decode(details), { longs: Number, defaults: true }) as {
      details: { type_url: string; value: Uint8Array }[];
    };
    for (const any of decoded.details) {
      if (any.type_url.slice(any.type_url.lastIndexOf('/') + 1) !== RETRY_INFO) continue;
      const info = RetryInfo.toObject(RetryInfo.decode(any.value), { longs: Number, defaults: true }) as {
        retry_delay?: { seconds: number; nanos: number };
      };
      const d = info.retry_delay ?? { seconds: 0, nanos: 0 };
      return Math.max(0, d.seconds * 1000 + Math.round(d.nanos / 1e6));
    }
  } catch {
    // Not a google.rpc.Status: no delay to honour (and RESOURCE_EXHAUSTED is then not retried).
  }
  return undefined;
}

/**
 * Classifies what the library reports (`ExportResult.error`, a grpc-js ServiceError carrying `code` and
 * the trailers in `metadata`). RESOURCE_EXHAUSTED is retried only when the server says when to retry
 * (RetryInfo in grpc-status-details-bin): without it, it usually means "message larger than the limit",
 * and the same request would fail forever at the head of the queue. A RetryInfo delay on any retryable
 * code comes back as `retryAfterMs`, for the exporter to wait at least that long.
 */
export function exportError(err: unknown): ExportError {
  const e = err as Partial<ServiceError> | undefined;
  const message = err instanceof Error ? err.message : String(err ?? 'export failed');
  if (typeof e?.code !== 'number') return new ExportError(message, undefined, false);
  const [details] = e.metadata?.get(STATUS_DETAILS_KEY) ?? [];
  const delay = typeof details === 'string' ? undefined : retryDelayMs(details);
  const retry = e.code === status.RESOURCE_EXHAUSTED ? delay !== undefined : RETRYABLE.has(e.code);
  if (!retry || delay === undefined) return new ExportError(message, e.code, retry);
  return new ExportError(`${message} (the server asks to retry in ${delay} ms)`, e.code, true, delay);
}

export function isRetryable(err: unknown): boolean {
  return err instanceof ExportError && err.retryable;
}
