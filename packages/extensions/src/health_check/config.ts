import { duration, endpoint, serverTls } from '@netmon/core';
import { z } from 'zod';

export const healthCheckConfig = z.strictObject({
  endpoint: endpoint('127.0.0.1:8081').describe(
    'Address to serve /healthz, /readyz and /status on, and the routes components register there (the devzero exporter’s GET /metrics) (host:port; port 0 picks a free one, logged at start). The default, 127.0.0.1, answers only on this machine; "0.0.0.0:8081", "[::]:8081" or ":8081" listen on every interface (logged at start when no client certificate is required), and the shipped Kubernetes pipeline listens on the pod’s address, where the kubelet probes.',
  ),
  recovery_duration: duration()
    .prefault('5m')
    .describe(
      'How long a component may stay in recoverable_error (an exporter retrying a dead backend, a receiver failing to read) before /healthz reports the agent unhealthy.',
    ),
  tls: serverTls(),
});

export type HealthCheckConfig = z.output<typeof healthCheckConfig>;
