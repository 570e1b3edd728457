import type { RequestListener, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ComponentSettings,
  checkServerTlsFiles,
  createHttpServer,
  defineExtension,
  type HttpServer,
  type HttpServerLimits,
  type ObservedMetrics,
  observeMetrics,
  parseEndpoint,
  systemError,
} from '@netmon/core';
import { type HealthCheckConfig, healthCheckConfig } from './config.js';
import { HEALTH_CHECK, type HealthCheck, type RouteHandler } from './contract.js';
import { liveness, readiness, statusDocument } from './health.js';
import { HEALTH_CHECK_METRICS } from './metrics.js';

const BUILT_IN = ['/healthz', '/readyz', '/status'];

export const healthCheckFactory = defineExtension({
  kind: 'extension',
  type: HEALTH_CHECK,
  stability: 'beta',
  description:
    'Serves /healthz (liveness), /readyz (readiness) and /status (JSON) from component status, and the routes components register on the same port (the devzero exporter’s zxporter-compatible /metrics).',
  config: healthCheckConfig,
  metrics: HEALTH_CHECK_METRICS,
  validate: (config, { configDir }) => checkServerTlsFiles(config.tls, configDir),
  claims: (config) => [{ kind: 'listen', key: 'endpoint', endpoint: config.endpoint }],
  create: (settings, config) => createHealthCheck(settings, config),
});

/**
 * The extension. Its server keeps core's limits (HTTP_SERVER_LIMITS: headers within 10 s, the request
 * within 15 s, 30 s idle, 65 s kept alive, 64 connections); tests shorten them with `limits`.
 */
export function createHealthCheck(
  settings: ComponentSettings,
  config: HealthCheckConfig,
  limits?: Partial<HttpServerLimits>,
): HealthCheck {
  let http: HttpServer | undefined;
  let observed: ObservedMetrics<typeof HEALTH_CHECK_METRICS> | undefined;
  const budget = config.recovery_duration;
  const routes = new Map<string, { handler: RouteHandler; owner: string }>();
  const send = (res: ServerResponse, code: number, body: unknown) => {
    const text = `${JSON.stringify(body, null, 2)}\n`;
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(text);
  };
  const handle: RequestListener = (req, res) => {
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
      default: {
        const route = routes.get(path);
        if (route) {
          try {
            return route.handler(req, res);
          } catch (err) {
            settings.logger.warn({ path, owner: route.owner, err: (err as Error).message }, 'route failed');
            if (!res.headersSent)
              return send(res, 500, { error: `${path} failed: ${(err as Error).message}` });
            return res.end();
          }
        }
        const all = [...BUILT_IN, ...routes.keys()];
        return send(res, 404, {
          error: `no such endpoint ${path}; try ${all.slice(0, -1).join(', ')} or ${all[all.length - 1]}`,
        });
      }
    }
  };
  return {
    address: () => (http?.server.address() as AddressInfo | null) ?? undefined,
    route(path, handler, owner = 'a component') {
      if (!path.startsWith('/')) throw new Error(`route ${path} must start with /`);
      if (BUILT_IN.includes(path)) throw new Error(`${path} is health_check's own endpoint`);
      const taken = routes.get(path);
      if (taken) throw new Error(`${path} is already served by ${taken.owner}`);
      const entry = { handler, owner };
      routes.set(path, entry);
      return () => {
        if (routes.get(path) === entry) routes.delete(path);
      };
    },
    start: () =>
      new Promise<void>((resolve, reject) => {
        const { host, port } = parseEndpoint(config.endpoint);
        // Reads the TLS files: one gone since validate fails the start, naming the key and the path.
        const made = createHttpServer({
          tls: config.tls,
          configDir: settings.configDir,
          limits,
          handler: handle,
          who: 'health_check',
          logger: settings.logger,
        });
        const s = made.server;
        s.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            new Error(
              `cannot listen on ${config.endpoint}: ${systemError(err)}${err.code === 'EADDRINUSE' ? `; another process or component (a second agent?) serves this port: set extensions::${settings.id}::endpoint` : ''}`,
            ),
          ),
        );
        s.listen(port, host, () => {
          http = made;
          const a = s.address() as AddressInfo;
          const shown = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
          settings.logger.info(
            { endpoint: `${host}:${a.port}`, url: `${made.scheme}://${shown}` },
            'health endpoints listening',
          );
          observed = observeMetrics(settings.meter, HEALTH_CHECK_METRICS, (r) => {
            r.droppedConnections(made.dropped.evicted_idle, { reason: 'evicted_idle' });
            r.droppedConnections(made.dropped.max_connections, { reason: 'max_connections' });
            if (!config.tls) return;
            r.tlsHandshakeFailures(made.tlsStats.handshakeFailures);
            r.tlsReloads(made.tlsStats.reloaded, { outcome: 'reloaded' });
            r.tlsReloads(made.tlsStats.reloadFailed, { outcome: 'failed' });
          });
          resolve();
        });
      }),
    shutdown: () =>
      new Promise<void>((resolve) => {
        observed?.close();
        observed = undefined;
        const s = http?.server;
        http = undefined;
        if (!s) return resolve();
        s.close(() => resolve());
        s.closeAllConnections();
      }),
  };
}
