// The health_check extension's self-metrics, declared once: the extension observes them, the README lists
// them. The TLS ones only with `tls` set: they count TLS handshakes and certificate reloads.
import { defineMetrics, serverTlsMetrics } from '@netmon/core';

export const HEALTH_CHECK_METRICS = defineMetrics({
  ...serverTlsMetrics('netmon_health_check'),
  droppedConnections: {
    name: 'netmon_health_check_dropped_connections',
    kind: 'counter',
    unit: '{connection}',
    description:
      'Connections the health endpoint closed at its cap of 64 open connections, by reason: evicted_idle (the one idle longest, closed to admit a new one), max_connections (a new one refused on arrival: every open one had a response in progress).',
    attributes: {
      reason:
        'evicted_idle (an idle connection closed to admit a new one) or max_connections (a new connection refused: none was idle)',
    },
  },
});
