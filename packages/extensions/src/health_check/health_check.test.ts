import type { ComponentState, Host, QueueState, ServicePhase } from '@netmon/core';
import { createLogger } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { describe, expect, it } from 'vitest';
import { healthCheckConfig } from './config.js';
import type { HealthCheck } from './contract.js';
import { healthCheckFactory } from './factory.js';
import { liveness, readiness } from './health.js';

const state = (over: Partial<ComponentState>): ComponentState => ({
  kind: 'exporter',
  id: 'otlp',
  status: 'ok',
  since: 0,
  items: { in: 0, out: 0, dropped: 0, failed: 0 },
  ...over,
});

const host = (
  phase: ServicePhase,
  components: ComponentState[],
  queues: QueueState[] = [],
  startedAt = 0,
): Host => ({
  phase: () => phase,
  components: () => components,
  queues: () => queues,
  startedAt: () => startedAt,
});

describe('liveness and readiness', () => {
  const now = 10 * 60_000;
  it('an agent that is starting is alive but not ready', () => {
    const h = host('starting', [state({ status: 'starting' })], [], now - 30_000);
    expect(liveness(h, 60_000, now).ok).toBe(true);
    expect(readiness(h)).toEqual({
      ok: false,
      reasons: ['the agent is starting', 'exporter "otlp" is starting'],
    });
  });

  it('an agent that has been starting for longer than the budget is not alive', () => {
    const h = host(
      'starting',
      [
        state({ status: 'ok' }),
        state({ kind: 'processor', id: 'plugin/x', pipeline: 'flows', status: 'starting' }),
      ],
      [],
      now - 120_000,
    );
    expect(liveness(h, 60_000, now)).toEqual({
      ok: false,
      reasons: [
        'the agent has been starting for 2.0 min; not started yet: processor "plugin/x" in pipeline flows',
      ],
    });
  });

  it('a recoverable error is tolerated until it outlasts the budget', () => {
    const young = host('running', [
      state({ status: 'recoverable_error', errorSince: now - 30_000, lastError: 'UNAVAILABLE' }),
    ]);
    expect(liveness(young, 60_000, now).ok).toBe(true);
    expect(readiness(young).ok).toBe(true);
    const old = host('running', [
      state({ status: 'recoverable_error', errorSince: now - 120_000, lastError: 'UNAVAILABLE' }),
    ]);
    expect(liveness(old, 60_000, now)).toEqual({
      ok: false,
      reasons: ['exporter "otlp" has been failing for 2.0 min: UNAVAILABLE'],
    });
  });

  it('a permanent or fatal error fails both', () => {
    const h = host('running', [
      state({ kind: 'receiver', id: 'conntrack', status: 'fatal_error', lastError: 'EPERM' }),
    ]);
    expect(liveness(h, 60_000, now).reasons).toEqual(['receiver "conntrack" is in fatal_error: EPERM']);
    expect(readiness(h).ok).toBe(false);
  });
});

describe('health_check endpoints', () => {
  it('serves /healthz, /readyz and /status from the host, and 404 elsewhere', async () => {
    const components = [
      state({
        kind: 'receiver',
        id: 'file',
        status: 'ok',
        items: { in: 0, out: 120, dropped: 7, failed: 0 },
      }),
      state({ status: 'permanent_error', lastError: 'bad credentials' }),
    ];
    const queues: QueueState[] = [
      { pipeline: 'flows', receiver: 'file', capacity: 64, depth: 3, droppedBatches: 1, droppedItems: 7 },
    ];
    const settings = {
      ...testSettings('extension', 'health_check'),
      host: host('running', components, queues),
    };
    const ext = (await healthCheckFactory.create(
      settings,
      healthCheckFactory.config.parse({ endpoint: '127.0.0.1:0' }),
    )) as HealthCheck;
    await ext.start?.();
    try {
      const base = `http://127.0.0.1:${ext.address()?.port}`;
      const healthz = await fetch(`${base}/healthz`);
      expect(healthz.status).toBe(503);
      expect(await healthz.json()).toEqual({
        status: 'unhealthy',
        reasons: ['exporter "otlp" is in permanent_error: bad credentials'],
      });
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      const status = (await (await fetch(`${base}/status`)).json()) as Record<string, unknown>;
      expect(status).toMatchObject({
        phase: 'running',
        healthy: false,
        ready: false,
        queues: [
          {
            pipeline: 'flows',
            receiver: 'file',
            capacity: 64,
            depth: 3,
            dropped_batches: 1,
            dropped_items: 7,
          },
        ],
      });
      expect((status.components as unknown[])[0]).toMatchObject({
        kind: 'receiver',
        id: 'file',
        items: { out: 120, dropped: 7 },
      });
      expect((await fetch(`${base}/nope`)).status).toBe(404);
      components[1].status = 'ok';
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    } finally {
      await ext.shutdown?.();
    }
  });

  it('serves routes other components register, refuses a taken path, lists routes in the 404', async () => {
    const ext = (await healthCheckFactory.create(
      testSettings('extension', 'health_check'),
      healthCheckFactory.config.parse({ endpoint: '127.0.0.1:0' }),
    )) as HealthCheck;
    await ext.start?.();
    try {
      const base = `http://127.0.0.1:${ext.address()?.port}`;
      const unroute = ext.route(
        '/metrics',
        (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"node_name":"n"}\n');
        },
        'exporter devzero',
      );
      const metrics = await fetch(`${base}/metrics?x=1`);
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toBe('application/json');
      expect(await metrics.text()).toBe('{"node_name":"n"}\n');
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${base}/nope`)).json()).toEqual({
        error: 'no such endpoint /nope; try /healthz, /readyz, /status or /metrics',
      });
      expect(() => ext.route('/metrics', () => undefined, 'exporter devzero/b')).toThrow(
        '/metrics is already served by exporter devzero',
      );
      expect(() => ext.route('/status', () => undefined)).toThrow("/status is health_check's own endpoint");
      ext.route('/boom', () => {
        throw new Error('bad');
      });
      expect(await (await fetch(`${base}/boom`)).json()).toEqual({ error: '/boom failed: bad' });
      unroute();
      expect((await fetch(`${base}/metrics`)).status).toBe(404);
      // The path is free again.
      ext.route('/metrics', (_req, res) => res.end('again'))();
    } finally {
      await ext.shutdown?.();
    }
  });

  it('refuses to start when the port is taken, saying which endpoint', async () => {
    const first = (await healthCheckFactory.create(
      testSettings('extension', 'a'),
      healthCheckFactory.config.parse({ endpoint: '127.0.0.1:0' }),
    )) as HealthCheck;
    await first.start?.();
    const taken = `127.0.0.1:${first.address()?.port}`;
    const second = await healthCheckFactory.create(
      testSettings('extension', 'b'),
      healthCheckFactory.config.parse({ endpoint: taken }),
    );
    await expect(second.start?.()).rejects.toThrow(`cannot listen on ${taken}: EADDRINUSE`);
    await first.shutdown?.();
  });

  it('listens on loopback by default, and says how to listen on every interface', () => {
    expect(healthCheckFactory.config.parse({}).endpoint).toBe('127.0.0.1:8081');
    const text = healthCheckConfig.shape.endpoint.description ?? '';
    for (const form of ['127.0.0.1', '0.0.0.0:8081', '[::]:8081', ':8081']) expect(text).toContain(form);
  });

  it('logs once, at start, that a wildcard address without TLS serves every interface unauthenticated', async () => {
    const noted = async (endpoint: string) => {
      const logs: Record<string, unknown>[] = [];
      const settings = testSettings('extension', 'health_check');
      settings.logger = createLogger({
        pretty: false,
        destination: { write: (line: string) => logs.push(JSON.parse(line)) },
      });
      const ext = (await healthCheckFactory.create(
        settings,
        healthCheckFactory.config.parse({ endpoint }),
      )) as HealthCheck;
      await ext.start?.();
      try {
        // Answering requests adds nothing to it: the note is the start's.
        await fetch(`http://127.0.0.1:${ext.address()?.port}/healthz`);
        await fetch(`http://127.0.0.1:${ext.address()?.port}/healthz`);
      } finally {
        await ext.shutdown?.();
      }
      return logs.filter((l) => String(l.msg).includes('every interface'));
    };
    const wildcard = await noted(':0');
    expect(wildcard).toHaveLength(1);
    expect(wildcard[0]).toMatchObject({ level: 30 });
    expect(wildcard[0].msg).toMatch(/^serving every interface unauthenticated/);
    expect(await noted('0.0.0.0:0')).toHaveLength(1);
    expect(await noted('[::]:0')).toHaveLength(1);
    expect(await noted('127.0.0.1:0')).toEqual([]);
  });

  it('rejects an endpoint that is not host:port', () => {
    expect(healthCheckFactory.config.safeParse({ endpoint: 'localhost' }).success).toBe(false);
    expect(healthCheckFactory.config.parse({ endpoint: '[::1]:9000' }).endpoint).toBe('[::1]:9000');
  });
});
