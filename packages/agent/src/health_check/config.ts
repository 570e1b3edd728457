import { duration } from '@netmon/core';
import { z } from 'zod';

export const healthCheckConfig = z.strictObject({
  endpoint: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:]*):\d{1,5}$/, 'expected host:port, e.g. 0.0.0.0:8081 or [::]:8081')
    .default('0.0.0.0:8081')
    .describe('Address to serve /healthz, /readyz and /status on (host:port; port 0 picks a free one).'),
  recovery_duration: duration()
    .prefault('5m')
    .describe(
      'How long a component may stay in recoverable_error (an exporter retrying a dead backend, a receiver failing to read) before /healthz reports the agent unhealthy.',
    ),
});

export type HealthCheckConfig = z.output<typeof healthCheckConfig>;

/** Splits "host:port" / "[v6]:port" into listen options. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}
