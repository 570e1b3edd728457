import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defineExtension, type Extension } from '@netmon/core';
import { healthCheckConfig, parseEndpoint } from './config.js';
import { liveness, readiness, statusDocument } from './health.js';

export interface HealthCheck extends Extension {
  /** The bound address once started (useful with port 0). */
  address(): AddressInfo | undefined;
}

export const healthCheckFactory = defineExtension({
  kind: 'extension',
  type: 'health_check',
  stability: 'beta',
  description: 'Serves /healthz (liveness), /readyz (readiness) and /status (JSON) from component status.',
  config: healthCheckConfig,
  create(settings, config): HealthCheck {
    let server: Server | undefined;
    const budget = config.recovery_duration;
    const send = (res: import('node:http').ServerResponse, code: number, body: unknown) => {
      const text = `${JSON.stringify(body, null, 2)}\n`;
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(text);
    };
    const handle: Parameters<typeof createServer>[1] = (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'use GET' });
      switch (path) {
        case '/healthz': {
          const v = liveness(settings.host, budget);
          return send(res, v.ok ? 200 : 503, { status: v.ok ? 'healthy' : 'unhealthy', reasons: v.reasons });
        }
        case '/readyz': {
          const v = readiness(settings.host);
          return send(res, v.ok ? 200 : 503, { status: v.ok ? 'ready' : 'not ready', reasons: v.reasons });
        }
        case '/status':
          return send(res, 200, statusDocument(settings.host, budget));
        default:
          return send(res, 404, { error: `no such endpoint ${path}; try /healthz, /readyz or /status` });
      }
    };
    return {
      address: () => (server?.address() as AddressInfo | null) ?? undefined,
      start: () =>
        new Promise<void>((resolve, reject) => {
          const { host, port } = parseEndpoint(config.endpoint);
          const s = createServer(handle);
          s.once('error', (err) =>
            reject(
              new Error(
                `cannot listen on ${config.endpoint}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
              ),
            ),
          );
          s.listen(port, host, () => {
            server = s;
            settings.logger.info(
              { endpoint: `${host}:${(s.address() as AddressInfo).port}` },
              'health endpoints listening',
            );
            resolve();
          });
        }),
      shutdown: () =>
        new Promise<void>((resolve) => {
          const s = server;
          server = undefined;
          if (!s) return resolve();
          s.close(() => resolve());
          s.closeAllConnections();
        }),
    };
  },
});
