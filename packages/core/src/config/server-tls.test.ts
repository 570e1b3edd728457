// The servers' tls key against real files (testkit/tls: a CA and a certificate it signed, with its key)
// and real sockets: node:https clients, the handshake with and without a client certificate, reloads.
import { generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { request as httpRequest, type RequestListener, type ServerResponse } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger, silentLogger } from '../telemetry/logger.js';
import { rawConnection, until } from '../testkit/sockets.js';
import { TEST_TLS_DIR } from '../testkit/tls.js';
import {
  type ConnectionDropReason,
  checkServerTlsFiles,
  createHttpServer,
  HTTP_SERVER_LIMITS,
  type HttpServer,
  type HttpServerLimits,
  type ServerTlsConfig,
  serverTls,
  serverTlsMetrics,
} from './server-tls.js';

const TLS = TEST_TLS_DIR;
// The test CA's only leaf: a client certificate. Serving with it is fine; clients here check the CA
// chain only where they present it themselves, and otherwise read which certificate they were shown.
const PAIR = { cert_file: 'client.pem', key_file: 'client-key.pem' };
const schema = z.strictObject({ tls: serverTls() });
const tlsOf = (t: Record<string, unknown>) => schema.parse({ tls: t }).tls as ServerTlsConfig;
/** A P-256 key that belongs to no certificate here. */
const strayKey = () =>
  generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;

let dir = '';
const servers: HttpServer[] = [];
const clients: Socket[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'netmon-server-tls-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) {
    s.server.closeAllConnections();
    await new Promise((r) => s.server.close(r));
  }
  await rm(dir, { recursive: true, force: true });
});

async function listen(
  tls: ServerTlsConfig | undefined,
  opts: {
    host?: string;
    configDir?: string;
    logs?: Record<string, unknown>[];
    limits?: Partial<HttpServerLimits>;
    handler?: RequestListener;
    onDrop?: (reason: ConnectionDropReason) => void;
  } = {},
) {
  const logs = opts.logs;
  const s = createHttpServer({
    tls,
    configDir: opts.configDir ?? TLS,
    limits: opts.limits,
    onDrop: opts.onDrop,
    handler: opts.handler ?? ((req, res) => res.end(`hello ${req.url}`)),
    who: 'test server',
    logger: logs
      ? createLogger({
          level: 'debug',
          pretty: false,
          destination: { write: (line: string) => logs.push(JSON.parse(line)) },
        })
      : silentLogger(),
  });
  servers.push(s);
  await new Promise<void>((r) => s.server.listen(0, opts.host ?? '127.0.0.1', r));
  return { s, port: (s.server.address() as AddressInfo).port };
}

function get(
  port: number,
  opts: { ca?: Buffer; cert?: Buffer; key?: Buffer; host?: string } = {},
): Promise<{ body: string; peer: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: opts.host ?? '127.0.0.1',
        port,
        path: '/x',
        agent: false,
        cert: opts.cert,
        key: opts.key,
        ca: opts.ca,
        // The served certificate is a client's; what matters here is which one is served.
        rejectUnauthorized: false,
      },
      (res) => {
        const peer = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '');
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ body, peer }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('serverTls', () => {
  it('is optional; set, it needs cert_file and key_file, and fills in the rest', () => {
    expect(schema.parse({}).tls).toBeUndefined();
    expect(tlsOf(PAIR)).toEqual({ ...PAIR, min_version: '1.2', reload_interval: 60_000 });
    expect(tlsOf({ ...PAIR, client_ca_file: 'ca.pem', min_version: '1.3', reload_interval: '0s' })).toEqual({
      ...PAIR,
      client_ca_file: 'ca.pem',
      min_version: '1.3',
      reload_interval: 0,
    });
    const issues = (t: unknown) =>
      schema.safeParse({ tls: t }).error?.issues.map((i) => [i.path.join('::'), i.message]);
    expect(issues({})).toEqual([
      ['tls::cert_file', 'required: the PEM file of the certificate the server presents'],
      ['tls::key_file', 'required: the PEM file of the private key of cert_file'],
    ]);
    expect(issues({ ...PAIR, min_version: 1.2 })).toEqual([['tls::min_version', 'expected "1.2" or "1.3"']]);
    expect(issues({ ...PAIR, reload_interval: '500ms' })).toEqual([
      ['tls::reload_interval', 'expected 0s (never) or at least 1s'],
    ]);
    expect(issues({ ...PAIR, insecure: true })?.[0]).toEqual(['tls', 'Unrecognized key: "insecure"']);
    expect(serverTls().description).toMatch(/^Serve HTTPS instead of plain HTTP/);
  });

  it('declares its self-metrics under the component’s prefix', () => {
    const m = serverTlsMetrics('netmon_x');
    expect([m.tlsHandshakeFailures.name, m.tlsReloads.name]).toEqual([
      'netmon_x_tls_handshake_failures',
      'netmon_x_tls_reloads',
    ]);
  });
});

describe('checkServerTlsFiles', () => {
  it('accepts a certificate with its key and a CA; nothing to check without tls', async () => {
    expect(await checkServerTlsFiles(undefined, TLS)).toEqual([]);
    expect(await checkServerTlsFiles(tlsOf({ ...PAIR, client_ca_file: 'ca.pem' }), TLS)).toEqual([]);
  });

  it('names the key and the file, never what is in it', async () => {
    const key = strayKey();
    await writeFile(join(dir, 'stray-key.pem'), key);
    await copyFile(join(TLS, 'client.pem'), join(dir, 'cert.pem'));
    expect(await checkServerTlsFiles(tlsOf({ ...PAIR, client_ca_file: 'missing.pem' }), TLS)).toEqual([
      { key: 'tls::client_ca_file', message: `cannot read ${join(TLS, 'missing.pem')}: ENOENT` },
    ]);
    const mismatch = await checkServerTlsFiles(
      tlsOf({ cert_file: 'cert.pem', key_file: 'stray-key.pem', client_ca_file: 'stray-key.pem' }),
      dir,
    );
    expect(mismatch).toEqual([
      {
        key: 'tls::client_ca_file',
        message: expect.stringMatching(new RegExp(`^${join(dir, 'stray-key.pem')} is not usable: `)),
      },
      {
        key: 'tls::cert_file',
        message: expect.stringMatching(
          new RegExp(`^${join(dir, 'cert.pem')} is not usable: .*key values mismatch`),
        ),
      },
    ]);
    const secretLine = key.split('\n')[1];
    expect(JSON.stringify(mismatch)).not.toContain(secretLine);
  });
});

describe('createHttpServer', () => {
  it('without tls: node:http with the handler and options', async () => {
    const { s, port } = await listen(undefined);
    expect(s.scheme).toBe('http');
    expect(s.server.keepAliveTimeout).toBe(65_000);
    expect(await (await fetch(`http://127.0.0.1:${port}/plain`)).text()).toBe('hello /plain');
    expect(await s.reloadTls()).toBe('off');
  });

  it('with tls: node:https with the same handler and options, presenting cert_file', async () => {
    const { s, port } = await listen(tlsOf(PAIR));
    expect(s.scheme).toBe('https');
    expect(s.server.keepAliveTimeout).toBe(65_000);
    expect(await get(port)).toEqual({ body: 'hello /x', peer: 'netmon test client' });
    // Plain HTTP to it fails the handshake, and is counted.
    await expect(
      new Promise((resolve, reject) =>
        httpRequest({ host: '127.0.0.1', port, agent: false }, resolve).on('error', reject).end(),
      ),
    ).rejects.toThrow();
    await expect.poll(() => s.tlsStats.handshakeFailures).toBe(1);
  });

  it('with client_ca_file: only a client presenting a certificate the CA signed is answered', async () => {
    const { s, port } = await listen(tlsOf({ ...PAIR, client_ca_file: 'ca.pem' }));
    const cert = await readFile(join(TLS, 'client.pem'));
    const key = await readFile(join(TLS, 'client-key.pem'));
    expect((await get(port, { cert, key })).body).toBe('hello /x');
    await expect(get(port)).rejects.toThrow(/certificate required/);
    await expect.poll(() => s.tlsStats.handshakeFailures).toBe(1);
  });

  it('throws naming the key and the path when a file cannot be read or does not load', async () => {
    await writeFile(join(dir, 'stray-key.pem'), strayKey());
    await copyFile(join(TLS, 'client.pem'), join(dir, 'cert.pem'));
    const make = (tls: ServerTlsConfig) =>
      createHttpServer({
        tls,
        configDir: dir,
        handler: () => undefined,
        who: 'test server',
        logger: silentLogger(),
      });
    expect(() => make(tlsOf({ cert_file: 'cert.pem', key_file: 'gone.pem' }))).toThrow(
      `test server: cannot read tls::key_file ${join(dir, 'gone.pem')}: ENOENT`,
    );
    expect(() => make(tlsOf({ cert_file: 'cert.pem', key_file: 'stray-key.pem' }))).toThrow(
      new RegExp(
        `^test server: tls::cert_file ${join(dir, 'cert.pem')}, tls::key_file ${join(dir, 'stray-key.pem')} do not load: .*key values mismatch`,
      ),
    );
  });

  it('reloads changed files for new connections; a pair that does not load keeps the previous one', async () => {
    await copyFile(join(TLS, 'client.pem'), join(dir, 'cert.pem'));
    await copyFile(join(TLS, 'client-key.pem'), join(dir, 'key.pem'));
    const logs: Record<string, unknown>[] = [];
    // reload_interval 0: only reloadTls() checks, so the test decides when.
    const { s, port } = await listen(
      tlsOf({ cert_file: 'cert.pem', key_file: 'key.pem', reload_interval: '0s' }),
      {
        configDir: dir,
        logs,
      },
    );
    expect(await s.reloadTls()).toBe('unchanged');
    await writeFile(join(dir, 'key.pem'), strayKey());
    expect(await s.reloadTls()).toBe('failed');
    // Counted and warned once for these files, however often they are checked.
    expect(await s.reloadTls()).toBe('unchanged');
    expect(s.tlsStats).toEqual({ handshakeFailures: 0, reloaded: 0, reloadFailed: 1 });
    const warnings = logs.filter((l) => l.level === 40);
    expect(warnings).toEqual([
      expect.objectContaining({
        msg: 'cannot reload the TLS certificate; still serving the previous one',
        cert_file: join(dir, 'cert.pem'),
        key_file: join(dir, 'key.pem'),
        err: expect.stringMatching(/do not load: .*key values mismatch/),
      }),
    ]);
    expect((await get(port)).body).toBe('hello /x');
    // The right key again: a new version of the file, loaded.
    await copyFile(join(TLS, 'client-key.pem'), join(dir, 'key.pem'));
    expect(await s.reloadTls()).toBe('reloaded');
    expect(await s.reloadTls()).toBe('unchanged');
    expect(s.tlsStats).toEqual({ handshakeFailures: 0, reloaded: 1, reloadFailed: 1 });
    expect(logs.filter((l) => l.msg === 'TLS certificate reloaded')).toHaveLength(1);
    expect((await get(port)).peer).toBe('netmon test client');
  });

  it('checks every reload_interval while listening, and stops when closed', async () => {
    await copyFile(join(TLS, 'client.pem'), join(dir, 'cert.pem'));
    await copyFile(join(TLS, 'client-key.pem'), join(dir, 'key.pem'));
    const tls = { ...tlsOf({ cert_file: 'cert.pem', key_file: 'key.pem' }), reload_interval: 30 };
    const { s } = await listen(tls, { configDir: dir });
    const touch = (t: number) => utimes(join(dir, 'cert.pem'), t, t);
    await touch(1_000_000);
    await expect.poll(() => s.tlsStats.reloaded).toBe(1);
    s.server.close();
    await new Promise((r) => setTimeout(r, 50));
    await touch(2_000_000);
    await new Promise((r) => setTimeout(r, 150));
    expect(s.tlsStats.reloaded).toBe(1);
  });

  it('notes once when it serves every interface with no client certificate required', async () => {
    const noted = async (tls: ServerTlsConfig | undefined, host: string) => {
      const logs: Record<string, unknown>[] = [];
      await listen(tls, { host, logs });
      return logs.filter((l) => l.msg === 'serving every interface unauthenticated');
    };
    const plain = await noted(undefined, '0.0.0.0');
    expect(plain).toEqual([
      expect.objectContaining({ level: 30, tls: false, endpoint: expect.stringMatching(/^0\.0\.0\.0:\d+$/) }),
    ]);
    expect(await noted(tlsOf(PAIR), '0.0.0.0')).toEqual([expect.objectContaining({ tls: true })]);
    expect(await noted(undefined, '::')).toEqual([
      expect.objectContaining({ endpoint: expect.stringMatching(/^\[::\]:\d+$/) }),
    ]);
    expect(await noted(undefined, '127.0.0.1')).toEqual([]);
    expect(await noted(tlsOf({ ...PAIR, client_ca_file: 'ca.pem' }), '0.0.0.0')).toEqual([]);
  });
});

/** A raw connection, closed after the test; `ask` waits for the test handler's "hello <path>". */
async function connection(port: number, tls = false) {
  const c = await rawConnection(port, { tls });
  clients.push(c.socket);
  return { ...c, ask: (path: string) => c.request(path, (a) => a.includes(`hello ${path}`)) };
}

describe('createHttpServer: what a client may hold', () => {
  it('holds every server to the hardened limits unless told otherwise', async () => {
    const { s } = await listen(undefined);
    expect(s.limits).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 15_000,
      idleTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      maxConnections: 64,
    });
    expect(HTTP_SERVER_LIMITS).toEqual(s.limits);
    const applied = (h: HttpServer) => [
      h.server.headersTimeout,
      h.server.requestTimeout,
      h.server.timeout,
      h.server.keepAliveTimeout,
    ];
    expect(applied(s)).toEqual([10_000, 15_000, 30_000, 65_000]);
    const t = await listen(tlsOf(PAIR), { limits: { keepAliveTimeoutMs: 5000, maxConnections: 3 } });
    expect(applied(t.s)).toEqual([10_000, 15_000, 30_000, 5000]);
    expect(t.s.limits.maxConnections).toBe(3);
  });

  for (const tls of [false, true]) {
    it(`${tls ? 'https' : 'http'}: closes a connection that sends no request, one that sends its headers slowly, one kept alive too long, and one that stopped reading`, async () => {
      let big: { started: number; lasted?: number; whole?: boolean } | undefined;
      const { port } = await listen(tls ? tlsOf(PAIR) : undefined, {
        limits: { idleTimeoutMs: 600, headersTimeoutMs: 300, requestTimeoutMs: 400, keepAliveTimeoutMs: 400 },
        handler: (req, res) => {
          if (req.url !== '/big') return res.end(`hello ${req.url}`);
          const b = { started: performance.now() } as NonNullable<typeof big>;
          big = b;
          res.on('close', () => {
            b.lasted = performance.now() - b.started;
            b.whole = res.writableFinished;
          });
          // Far more than the sockets' buffers hold.
          res.end(Buffer.alloc(64 << 20));
        },
      });
      const silent = await connection(port, tls);
      const slow = await connection(port, tls);
      // A header line every 100 ms: never idle, never done.
      slow.socket.write('GET /slow HTTP/1.1\r\n');
      const trickle = setInterval(() => slow.socket.write('X-Slow: 1\r\n'), 100);
      const kept = await connection(port, tls);
      const stalled = await connection(port, tls);
      stalled.socket.pause();
      stalled.socket.write('GET /big HTTP/1.1\r\nHost: netmon\r\n\r\n');
      try {
        expect(await kept.ask('/kept')).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*hello \/kept$/);
        await until(() => silent.closed() && slow.closed() && kept.closed(), 4000);
      } finally {
        clearInterval(trickle);
      }
      // Node counts the time to the headers from the connection's start, and answers late ones with 408.
      for (const c of [silent, slow]) {
        expect(c.text()).toBe('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
        expect(c.lasted()).toBeGreaterThanOrEqual(250);
        expect(c.lasted()).toBeLessThan(2000);
      }
      // Node keeps the socket a second longer than keepAliveTimeout (keepAliveTimeoutBuffer), so that a
      // client with the same timeout closes first.
      expect(kept.lasted()).toBeGreaterThanOrEqual(1350);
      expect(kept.lasted()).toBeLessThan(4000);
      // Node grants a write still pending one more idle period.
      await until(() => big?.lasted !== undefined, 4000);
      expect(big?.whole).toBe(false);
      expect(big?.lasted).toBeGreaterThanOrEqual(550);
      expect(big?.lasted).toBeLessThan(3000);
      // The client sees the end once it reads again.
      stalled.socket.resume();
      await until(() => stalled.closed());
      expect(stalled.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(stalled.text().length).toBeLessThan(64 << 20);
    });
  }

  it('at the cap, closes the connection idle longest for a new one, one that never sent a request too', async () => {
    const reasons: ConnectionDropReason[] = [];
    const { s, port } = await listen(undefined, {
      limits: { maxConnections: 3 },
      onDrop: (r) => reasons.push(r),
    });
    const a = await connection(port);
    expect(await a.ask('/a')).toContain('hello /a');
    const b = await connection(port);
    expect(await b.ask('/b')).toContain('hello /b');
    const c = await connection(port);
    // a asks again: now b has been idle longest, although a is older.
    expect(await a.ask('/a2')).toContain('hello /a2');
    const d = await connection(port);
    expect(await d.ask('/d')).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*hello \/d$/);
    await until(() => b.closed());
    expect([a.closed(), c.closed()]).toEqual([false, false]);
    expect(s.dropped).toEqual({ max_connections: 0, evicted_idle: 1 });
    // Then c, connected but silent since.
    const e = await connection(port);
    expect(await e.ask('/e')).toContain('hello /e');
    await until(() => c.closed());
    expect(c.text()).toBe('');
    expect([a.closed(), d.closed()]).toEqual([false, false]);
    expect(s.dropped).toEqual({ max_connections: 0, evicted_idle: 2 });
    expect(reasons).toEqual(['evicted_idle', 'evicted_idle']);
    expect(await new Promise((r) => s.server.getConnections((_err, n) => r(n)))).toBe(3);
  });

  for (const tls of [false, true]) {
    it(`${tls ? 'https' : 'http'}: at the cap with a response in progress on every connection, refuses the new one and counts it`, async () => {
      const held: ServerResponse[] = [];
      const reasons: ConnectionDropReason[] = [];
      const { s, port } = await listen(tls ? tlsOf(PAIR) : undefined, {
        limits: { maxConnections: 2 },
        onDrop: (r) => reasons.push(r),
        handler: (req, res) => {
          if (req.url === '/hold') held.push(res);
          else res.end(`hello ${req.url}`);
        },
      });
      const a = await connection(port, tls);
      a.socket.write('GET /hold HTTP/1.1\r\nHost: netmon\r\n\r\n');
      const b = await connection(port, tls);
      b.socket.write('GET /hold HTTP/1.1\r\nHost: netmon\r\n\r\n');
      await until(() => held.length === 2);
      const refused = await connection(port, tls);
      await until(() => refused.closed());
      expect(refused.text()).toBe('');
      expect(s.dropped).toEqual({ max_connections: 1, evicted_idle: 0 });
      expect([a.closed(), b.closed()]).toEqual([false, false]);
      // a's response ends: a is idle, and gives way to the next connection.
      held[0].end('done');
      await until(() => a.text().endsWith('done'));
      const d = await connection(port, tls);
      expect(await d.ask('/d')).toContain('hello /d');
      await until(() => a.closed());
      expect(b.closed()).toBe(false);
      expect(s.dropped).toEqual({ max_connections: 1, evicted_idle: 1 });
      expect(reasons).toEqual(['max_connections', 'evicted_idle']);
      held[1].end();
    });
  }
});
