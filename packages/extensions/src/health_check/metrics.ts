// The health_check extension's self-metrics, declared once: the extension observes them, the README lists
// them. Only with `tls` set: they count TLS handshakes and certificate reloads.
import { defineMetrics, serverTlsMetrics } from '@netmon/core';

export const HEALTH_CHECK_METRICS = defineMetrics({ ...serverTlsMetrics('netmon_health_check') });
