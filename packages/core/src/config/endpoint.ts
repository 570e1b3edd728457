// A listen address in config ("0.0.0.0:9464", "[::]:9464", ":9464"), shared by every component that
// serves HTTP (health_check, the prometheus exporter), so they accept and explain the same forms.
import { z } from 'zod';

/** host:port or [v6]:port; an empty host means every interface. */
export const ENDPOINT_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[^\s:]*):\d{1,5}$/;

/** A config field holding a listen address, with its default. */
export function endpoint(defaultValue: string) {
  return z
    .string()
    .regex(ENDPOINT_PATTERN, `expected host:port, e.g. ${defaultValue} or [::]:${portOf(defaultValue)}`)
    .refine((e) => portOf(e) <= 65535, 'the port must be 0 – 65535 (0 picks a free one)')
    .default(defaultValue);
}

/** Splits "host:port" / "[v6]:port" into listen options; an empty host is 0.0.0.0. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}

function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

/** Where a gRPC client connects: host and port as grpc-js wants them, and whether to use TLS. */
export interface GrpcTarget {
  /** `host:port`, IPv6 in brackets. */
  address: string;
  tls: boolean;
}

/**
 * Parses the URL of a gRPC backend, `http(s)://host[:port][/]`: http is plaintext, https TLS (default
 * ports 80 and 443). Returns the reason when it is not one — gRPC methods live at fixed paths from the
 * root, so a path, query or credentials in the URL are mistakes worth naming.
 */
export function parseGrpcUrl(text: string, example: string): GrpcTarget | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${text}" is not a URL; expected e.g. ${example}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `"${text}": the scheme must be http:// (plaintext gRPC) or https:// (TLS), not ${url.protocol}//`;
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    return `"${text}": gRPC calls go to fixed service paths from the root, so the URL cannot have a path (${url.pathname})`;
  }
  if (url.search || url.hash || url.username || url.password) {
    return `"${text}": the URL cannot carry a query, a fragment or credentials (put those in the exporter's token or headers)`;
  }
  const tls = url.protocol === 'https:';
  return { address: `${url.hostname}:${url.port || (tls ? '443' : '80')}`, tls };
}

/** A config field holding a gRPC backend's URL (see parseGrpcUrl). */
export function grpcUrl(example: string) {
  return z.string().superRefine((text, ctx) => {
    const target = parseGrpcUrl(text, example);
    if (typeof target === 'string') ctx.addIssue({ code: 'custom', message: target });
  });
}
