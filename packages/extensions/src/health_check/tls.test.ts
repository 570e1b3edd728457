// health_check over HTTPS, against a real node:https client and real certificate files: the server's
// certificate checked against the test CA, client certificates required with tls::client_ca_file, the
// files checked by validate, and a renewed certificate picked up while serving.
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createLogger } from '@netmon/core';
import { recordingMeter, TEST_TLS_DIR, testSettings } from '@netmon/core/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthCheck } from './contract.js';
import { healthCheckFactory } from './factory.js';

const TLS = TEST_TLS_DIR;
const file = (name: string) => join(TLS, name);

interface Answer {
  status: number;
  body: string;
  /** CN of the certificate the server presented. */
  peer: string;
}

/** One GET over HTTPS on a fresh connection (no agent: each call does its own handshake). */
function get(
  port: number,
  path: string,
  opts: { ca?: string; cert?: string; key?: string; verify?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: false,
        ca: opts.ca ? [opts.ca] : undefined,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: opts.verify ?? true,
      },
      (res) => {
        const peer = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '');
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peer }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const pem = (name: string) => readFile(file(name), 'utf8');

const started: HealthCheck[] = [];
afterEach(async () => {
  for (const ext of started.splice(0)) await ext.shutdown?.();
});

async function start(
  config: Record<string, unknown>,
  opts: { configDir?: string; logs?: Record<string, unknown>[]; reloadMs?: number } = {},
) {
  const rec = recordingMeter();
  const settings = testSettings('extension', 'health_check', { configDir: opts.configDir ?? TLS });
  settings.meter = rec.meter;
  const logs = opts.logs;
  if (logs) {
    settings.logger = createLogger({
      level: 'debug',
      pretty: false,
      destination: { write: (line: string) => logs.push(JSON.parse(line)) },
    });
  }
  const parsed = healthCheckFactory.config.parse(config);
  // Below the schema's minimum of 1s, so a test sees a renewal quickly.
  if (opts.reloadMs !== undefined && parsed.tls) parsed.tls.reload_interval = opts.reloadMs;
  const ext = (await healthCheckFactory.create(settings, parsed)) as HealthCheck;
  await ext.start?.();
  started.push(ext);
  return { ext, port: ext.address()?.port ?? 0, metrics: rec };
}

const SERVER = { cert_file: 'server.pem', key_file: 'server-key.pem' };

describe('health_check over TLS', () => {
  it('serves HTTPS with tls::cert_file and key_file; the test CA verifies it; plaintext is refused', async () => {
    const logs: Record<string, unknown>[] = [];
    const { port, metrics } = await start({ endpoint: '127.0.0.1:0', tls: SERVER }, { logs });
    const ca = await pem('ca.pem');
    const a = await get(port, '/healthz', { ca });
    expect(a).toEqual({
      status: 200,
      body: `${JSON.stringify({ status: 'healthy', reasons: [] }, null, 2)}\n`,
      peer: 'netmon test server',
    });
    expect((await get(port, '/nope', { ca })).status).toBe(404);
    // Without the CA the server is not trusted (the system roots do not know it).
    await expect(get(port, '/healthz')).rejects.toThrow(/unable to verify|self.signed|local issuer/i);
    // Plain HTTP on the TLS port gets no answer, and the failed handshakes are counted.
    await expect(
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/healthz', agent: false }, resolve);
        req.on('error', reject);
        req.end();
      }),
    ).rejects.toThrow();
    await expect.poll(() => metrics.value('netmon_health_check_tls_handshake_failures')).toBe(2);
    expect(logs.find((l) => l.msg === 'health endpoints listening')).toMatchObject({
      level: 30,
      url: `https://127.0.0.1:${port}`,
    });
  });

  it('with tls::client_ca_file, answers only clients with a certificate that CA signed', async () => {
    const { port, metrics } = await start({
      endpoint: '127.0.0.1:0',
      tls: { ...SERVER, client_ca_file: 'ca.pem' },
    });
    const ca = await pem('ca.pem');
    const cert = await pem('client.pem');
    const key = await pem('client-key.pem');
    expect(await get(port, '/healthz', { ca, cert, key })).toMatchObject({
      status: 200,
      peer: 'netmon test server',
    });
    // No certificate: the handshake fails (TLS 1.3's alert arrives after the client has sent the request).
    await expect(get(port, '/healthz', { ca })).rejects.toThrow(/certificate required/);
    // Signed by the CA, but for a server: not a client certificate.
    const serverPair = { ca, cert: await pem('server.pem'), key: await pem('server-key.pem') };
    await expect(get(port, '/healthz', serverPair)).rejects.toThrow(/ECONNRESET|socket hang up/);
    await expect.poll(() => metrics.value('netmon_health_check_tls_handshake_failures')).toBe(2);
  });

  it('refuses TLS 1.2 clients with min_version 1.3', async () => {
    const { port } = await start({ endpoint: '127.0.0.1:0', tls: { ...SERVER, min_version: '1.3' } });
    const ca = await pem('ca.pem');
    const tls12 = new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/healthz', agent: false, ca: [ca], maxVersion: 'TLSv1.2' },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    await expect(tls12).rejects.toThrow(/protocol version|unsupported protocol|alert/i);
    expect((await get(port, '/healthz', { ca })).status).toBe(200);
  });

  it('validate names the tls key and file that cannot be used, without their contents', async () => {
    const validate = (tls: Record<string, unknown>) =>
      healthCheckFactory.validate?.(healthCheckFactory.config.parse({ tls }), { configDir: TLS });
    expect(await validate({ ...SERVER, client_ca_file: 'ca.pem' })).toEqual([]);
    expect(await validate({ cert_file: 'nope.pem', key_file: 'server-key.pem' })).toEqual([
      { key: 'tls::cert_file', message: `cannot read ${file('nope.pem')}: ENOENT` },
    ]);
    expect(await validate({ ...SERVER, client_ca_file: 'none.pem' })).toEqual([
      { key: 'tls::client_ca_file', message: `cannot read ${file('none.pem')}: ENOENT` },
    ]);
    // The client's key does not belong to the server's certificate.
    const mismatch = await validate({ cert_file: 'server.pem', key_file: 'client-key.pem' });
    expect(mismatch).toEqual([
      { key: 'tls::cert_file', message: expect.stringMatching(/is not usable: .*key values mismatch/) },
    ]);
    const key = await pem('client-key.pem');
    for (const issue of mismatch ?? []) expect(issue.message).not.toContain(key.split('\n')[1]);
    // A key file given as the CA: not a certificate.
    const notCa = await validate({ ...SERVER, client_ca_file: 'client-key.pem' });
    expect(notCa?.map((i) => i.key)).toEqual(['tls::client_ca_file']);
    expect(JSON.stringify(notCa)).not.toContain(key.split('\n')[1]);
  });

  it('refuses a tls block without both files, and unknown keys', () => {
    const issues = (tls: unknown) =>
      healthCheckFactory.config.safeParse({ tls }).error?.issues.map((i) => [i.path.join('::'), i.message]);
    expect(issues({ cert_file: 'a.pem' })).toEqual([
      ['tls::key_file', 'required: the PEM file of the private key of cert_file'],
    ]);
    expect(issues({ ...SERVER, min_version: '1.1' })?.[0]?.[0]).toBe('tls::min_version');
    expect(issues({ ...SERVER, ca_file: 'ca.pem' })?.[0]?.[1]).toMatch(/ca_file/);
    expect(issues({ ...SERVER, reload_interval: '10ms' })).toEqual([
      ['tls::reload_interval', 'expected 0s (never) or at least 1s'],
    ]);
    expect(healthCheckFactory.config.parse({ tls: SERVER }).tls).toEqual({
      ...SERVER,
      min_version: '1.2',
      reload_interval: 60_000,
    });
    expect(healthCheckFactory.config.parse({}).tls).toBeUndefined();
  });
});

describe('a renewed certificate', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = '';
  });

  it('is picked up when a Kubernetes secret volume swaps its files (symlinks to a ..data directory)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-hc-tls-'));
    // The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/, swapped by a rename.
    const version = async (name: string, cert: string, key: string) => {
      await mkdir(join(dir, name));
      await copyFile(file(cert), join(dir, name, 'tls.crt'));
      await copyFile(file(key), join(dir, name, 'tls.key'));
      await symlink(name, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    await version('..v1', 'server.pem', 'server-key.pem');
    await symlink('..data/tls.crt', join(dir, 'tls.crt'));
    await symlink('..data/tls.key', join(dir, 'tls.key'));
    const logs: Record<string, unknown>[] = [];
    const { port, metrics } = await start(
      { endpoint: '127.0.0.1:0', tls: { cert_file: 'tls.crt', key_file: 'tls.key' } },
      { configDir: dir, logs, reloadMs: 50 },
    );
    expect((await get(port, '/healthz', { verify: false })).peer).toBe('netmon test server');
    // A renewal: another certificate and key (the test client's pair stands in for a new one).
    await version('..v2', 'client.pem', 'client-key.pem');
    await expect
      .poll(async () => (await get(port, '/healthz', { verify: false })).peer, { timeout: 5000 })
      .toBe('netmon test client');
    expect(metrics.value('netmon_health_check_tls_reloads', { outcome: 'reloaded' })).toBe(1);
    expect(logs.filter((l) => l.msg === 'TLS certificate reloaded')).toHaveLength(1);
  });

  it('that does not load leaves the previous one serving, warned once and counted', async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-hc-tls-'));
    await copyFile(file('server.pem'), join(dir, 'cert.pem'));
    await copyFile(file('server-key.pem'), join(dir, 'key.pem'));
    const logs: Record<string, unknown>[] = [];
    const { port, metrics } = await start(
      { endpoint: '127.0.0.1:0', tls: { cert_file: 'cert.pem', key_file: 'key.pem' } },
      { configDir: dir, logs, reloadMs: 50 },
    );
    // Half a renewal: a new key whose certificate has not been written yet.
    const secret = await pem('client-key.pem');
    await writeFile(join(dir, 'key.pem'), secret);
    await expect
      .poll(() => metrics.value('netmon_health_check_tls_reloads', { outcome: 'failed' }), { timeout: 5000 })
      .toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    // Checked again at every interval, but not reloaded (nor warned about) until the files change again.
    expect(metrics.value('netmon_health_check_tls_reloads', { outcome: 'failed' })).toBe(1);
    const warnings = logs.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toBe('cannot reload the TLS certificate; still serving the previous one');
    expect(JSON.stringify(warnings[0])).toContain(join(dir, 'key.pem'));
    expect(JSON.stringify(warnings[0])).not.toContain(secret.split('\n')[1]);
    const ca = await pem('ca.pem');
    expect(await get(port, '/healthz', { ca })).toMatchObject({ status: 200, peer: 'netmon test server' });
    // The certificate follows: the pair loads.
    await copyFile(file('client.pem'), join(dir, 'cert.pem'));
    await expect
      .poll(async () => (await get(port, '/healthz', { verify: false })).peer, { timeout: 5000 })
      .toBe('netmon test client');
    expect(metrics.value('netmon_health_check_tls_reloads', { outcome: 'reloaded' })).toBe(1);
  });
});
