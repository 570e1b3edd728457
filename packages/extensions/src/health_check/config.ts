import { duration, endpoint } from '@netmon/core';
import { z } from 'zod';

export const healthCheckConfig = z.strictObject({
  endpoint: endpoint('0.0.0.0:8081').describe(
    'Address to serve /healthz, /readyz and /status on, and the routes components register there (the devzero exporter’s GET /metrics) (host:port; port 0 picks a free one, logged at start).',
  ),
  recovery_duration: duration()
    .prefault('5m')
    .describe(
      'How long a component may stay in recoverable_error (an exporter retrying a dead backend, a receiver failing to read) before /healthz reports the agent unhealthy.',
    ),
});

export type HealthCheckConfig = z.output<typeof healthCheckConfig>;
