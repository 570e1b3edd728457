// gRPC specifics of the otlp exporter: channel credentials from the tls keys, metadata from headers, and
// which failures are worth retrying (OTLP specification, "Failures"; the library retries none over gRPC).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type ChannelCredentials, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { OtlpExporterConfig } from './config.js';

/** True when requests go without TLS: an http:// endpoint, or tls.insecure. */
export function plaintext(config: OtlpExporterConfig): boolean {
  return new URL(config.endpoint).protocol === 'http:' || config.tls.insecure;
}

/** The TLS files named in the config, resolved against the config file's directory. */
export function tlsFiles(config: OtlpExporterConfig, configDir: string): { key: string; path: string }[] {
  const files: { key: string; path: string }[] = [];
  for (const key of ['ca_file', 'cert_file', 'key_file'] as const) {
    const file = config.tls[key];
    if (file !== undefined) files.push({ key: `tls::${key}`, path: resolve(configDir, file) });
  }
  return files;
}

function read(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(`otlp exporter: cannot read ${key} ${path}: ${code}`);
  }
}

/** Channel credentials for the endpoint; reads the TLS files (throws naming the key and file). */
export function channelCredentials(config: OtlpExporterConfig, configDir: string): ChannelCredentials {
  if (plaintext(config)) return credentials.createInsecure();
  const file = (key: 'ca_file' | 'cert_file' | 'key_file') => {
    const f = config.tls[key];
    return f === undefined ? null : read(resolve(configDir, f), `tls::${key}`);
  };
  const verify = config.tls.insecure_skip_verify
    ? { rejectUnauthorized: false, checkServerIdentity: () => undefined }
    : undefined;
  return credentials.createSsl(file('ca_file'), file('key_file'), file('cert_file'), verify);
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
  ) {
    super(message);
    this.name = 'ExportError';
  }
}

/**
 * Classifies what the library reports (`ExportResult.error`, a grpc-js ServiceError carrying `code` and
 * the trailers in `metadata`). RESOURCE_EXHAUSTED is retried only when the server says when to retry
 * (RetryInfo in grpc-status-details-bin): without it, it usually means "message larger than the limit",
 * and the same request would fail forever at the head of the queue.
 */
export function exportError(err: unknown): ExportError {
  const e = err as Partial<ServiceError> | undefined;
  const message = err instanceof Error ? err.message : String(err ?? 'export failed');
  if (typeof e?.code !== 'number') return new ExportError(message, undefined, false);
  let retry = RETRYABLE.has(e.code);
  if (e.code === status.RESOURCE_EXHAUSTED) {
    retry = (e.metadata?.get('grpc-status-details-bin').length ?? 0) > 0;
  }
  return new ExportError(message, e.code, retry);
}

export function isRetryable(err: unknown): boolean {
  return err instanceof ExportError && err.retryable;
}
