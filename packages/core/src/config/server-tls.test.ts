// The servers' tls key against real files (testkit/tls: a CA and a certificate it signed, with its key)
// and real sockets: node:https clients, the handshake with and without a client certificate, reloads.
import { generateKeyPairSync } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger, silentLogger } from '../telemetry/logger.js';
import { TEST_TLS_DIR } from '../testkit/tls.js';
import {
  checkServerTlsFiles,
  createHttpServer,
  type HttpServer,
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
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'netmon-server-tls-'));
});
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.server.closeAllConnections();
    await new Promise((r) => s.server.close(r));
  }
  await rm(dir, { recursive: true, force: true });
});

async function listen(
  tls: ServerTlsConfig | undefined,
  opts: { host?: string; configDir?: string; logs?: Record<string, unknown>[] } = {},
) {
  const logs = opts.logs;
  const s = createHttpServer({
    tls,
    configDir: opts.configDir ?? TLS,
    options: { keepAliveTimeout: 65_000 },
    handler: (req, res) => res.end(`hello ${req.url}`),
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
