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
