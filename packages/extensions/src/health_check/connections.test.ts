// health_check against clients that hold connections: silent ones, ones that send their headers a line at
// a time, ones kept alive, ones that never get their answer. Real sockets against the real server; the
// timeouts are shortened where a test would otherwise wait for many seconds.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpServerLimits } from '@netmon/core';
import { rawConnection, recordingMeter, testSettings, until } from '@netmon/core/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthCheck } from './contract.js';
import { createHealthCheck, healthCheckFactory } from './factory.js';

const running: HealthCheck[] = [];
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const ext of running.splice(0)) await ext.shutdown?.();
});

/** Started on a free loopback port: with the factory's limits, or with `limits` instead. */
async function start(limits?: Partial<HttpServerLimits>) {
  const rec = recordingMeter();
  const settings = testSettings('extension', 'health_check');
  settings.meter = rec.meter;
  const config = healthCheckFactory.config.parse({ endpoint: '127.0.0.1:0' });
  const ext = limits
    ? createHealthCheck(settings, config, limits)
    : ((await healthCheckFactory.create(settings, config)) as HealthCheck);
  await ext.start?.();
  running.push(ext);
  const dropped = (reason: string) => rec.value('netmon_health_check_dropped_connections', { reason });
  return { ext, port: ext.address()?.port ?? 0, dropped };
}

type Connection = Awaited<ReturnType<typeof connection>>;

/** A raw connection, closed after the test; `get` resolves with the status line of a whole answer. */
async function connection(port: number) {
  const c = await rawConnection(port);
  clients.push(c.socket);
  // The answers are chunked: the last chunk is empty.
  const get = async (path: string) =>
    (await c.request(path, (a) => a.endsWith('\r\n0\r\n\r\n'))).split('\r\n', 1)[0];
  return { ...c, get };
}

describe('health_check connections', () => {
  it('closes a connection that sends nothing, one that sends half its headers, and one kept alive too long', async () => {
    const { port } = await start({
      headersTimeoutMs: 300,
      requestTimeoutMs: 400,
      idleTimeoutMs: 600,
      keepAliveTimeoutMs: 400,
    });
    const silent = await connection(port);
    const half = await connection(port);
    half.socket.write('GET /healthz HTTP/1.1\r\nHost: netmon\r\nX-Half: ');
    // Still sending, a byte every 100 ms: the idle timeout alone would never close it.
    const trickle = setInterval(() => half.socket.write('x'), 100);
    const kept = await connection(port);
    try {
      expect(await kept.get('/healthz')).toBe('HTTP/1.1 200 OK');
      await until(() => silent.closed() && half.closed() && kept.closed(), 4000);
    } finally {
      clearInterval(trickle);
    }
    for (const c of [silent, half]) {
      expect(c.text()).toBe('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      expect(c.lasted()).toBeGreaterThanOrEqual(250);
      expect(c.lasted()).toBeLessThan(2000);
    }
    // keepAliveTimeout, plus the second Node adds so that a client with the same timeout closes first.
    expect(kept.lasted()).toBeGreaterThanOrEqual(1350);
    expect(kept.lasted()).toBeLessThan(4000);
  });

  it('holds at most 64 connections: the one idle longest gives way to a probe, and is counted', async () => {
    const { port, dropped } = await start();
    // 32 clients that asked once and keep their connection, then 32 sending their headers slowly.
    const kept: Connection[] = [];
    for (let i = 0; i < 32; i++) {
      const c = await connection(port);
      expect(await c.get('/readyz')).toMatch(/^HTTP\/1\.1 (200|503) /);
      kept.push(c);
    }
    const half: Connection[] = [];
    for (let i = 0; i < 32; i++) {
      const c = await connection(port);
      c.socket.write('GET /healthz HTTP/1.1\r\nX-Half: ');
      half.push(c);
    }
    // Had half of them been closed, this would say so.
    await new Promise((r) => setTimeout(r, 100));
    expect([...kept, ...half].filter((c) => c.closed())).toEqual([]);
    expect(dropped('evicted_idle')).toBe(0);

    // The kubelet's probe.
    const probe = await connection(port);
    expect(await probe.get('/healthz')).toBe('HTTP/1.1 200 OK');
    await until(() => kept[0].closed());
    expect(dropped('evicted_idle')).toBe(1);
    // Ten more: the next ten idle longest go; the cap holds.
    for (let i = 0; i < 10; i++) half.push(await connection(port));
    await until(() => kept[10].closed());
    expect(kept.map((c) => c.closed())).toEqual([...Array(11).fill(true), ...Array(21).fill(false)]);
    expect(half.filter((c) => c.closed())).toEqual([]);
    expect(probe.closed()).toBe(false);
    expect(dropped('evicted_idle')).toBe(11);
    expect(dropped('max_connections')).toBe(0);
    expect([...kept, ...half, probe].filter((c) => !c.closed())).toHaveLength(64);
    expect(await probe.get('/status')).toBe('HTTP/1.1 200 OK');
  });

  it('refuses a new connection, and counts it, only when every open one has a response in progress', async () => {
    const { ext, port, dropped } = await start({ maxConnections: 2 });
    // A route whose answers the test holds: a response in progress, as one a client does not read.
    const held: ServerResponse[] = [];
    ext.route('/hold', (_req, res) => {
      held.push(res);
    });
    const a = await connection(port);
    a.socket.write('GET /hold HTTP/1.1\r\nHost: netmon\r\n\r\n');
    const b = await connection(port);
    b.socket.write('GET /hold HTTP/1.1\r\nHost: netmon\r\n\r\n');
    await until(() => held.length === 2);
    const refused = await connection(port);
    await until(() => refused.closed());
    expect(refused.text()).toBe('');
    expect(dropped('max_connections')).toBe(1);
    expect(dropped('evicted_idle')).toBe(0);
    // a's answer ends: a is idle, and makes room for the next one.
    held[0].end('{}\n');
    await until(() => a.text().endsWith('\r\n\r\n{}\n'));
    const c = await connection(port);
    expect(await c.get('/healthz')).toBe('HTTP/1.1 200 OK');
    await until(() => a.closed());
    expect(b.closed()).toBe(false);
    expect(dropped('max_connections')).toBe(1);
    expect(dropped('evicted_idle')).toBe(1);
    held[1].end();
  });
});
