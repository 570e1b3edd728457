// /metrics over HTTPS, against a real node:https client and the project's test CA: the scrape is served
// over TLS, a client certificate is required with tls::client_ca_file, validate checks the files, and
// handshake failures are counted.
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { recordingMeter, TEST_TLS_DIR, testSettings } from '@netmon/core/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { prometheusExporterConfig } from './config.js';
import { PrometheusExporter } from './exporter.js';
import { prometheusExporterFactory } from './factory.js';

const pem = (name: string) => readFile(join(TEST_TLS_DIR, name), 'utf8');

const running: PrometheusExporter[] = [];
afterEach(async () => {
  for (const e of running.splice(0)) await e.shutdown();
});

async function started(tls: Record<string, unknown>) {
  const rec = recordingMeter();
  const settings = testSettings('exporter', 'prometheus', { configDir: TEST_TLS_DIR, signals: ['flows'] });
  settings.meter = rec.meter;
  const config = prometheusExporterConfig.parse({ endpoint: '127.0.0.1:0', tls });
  const e = new PrometheusExporter(settings, config);
  running.push(e);
  await e.start();
  return { e, rec, url: new URL(e.endpoint.url() as string) };
}

/** One GET over HTTPS on a fresh connection: the status and body, or the error's code. */
function scrape(url: URL, opts: { cert?: string; key?: string; ca: string }): Promise<string> {
  return new Promise((resolve) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, agent: false, ...opts },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        // No flows yet: an empty exposition, in the exposition format.
        res.on('end', () =>
          resolve(`${res.statusCode} ${res.headers['content-type']?.split(';')[0]} ${body.length}`),
        );
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

describe('prometheus exporter over TLS', () => {
  it('serves /metrics over HTTPS with the configured certificate', async () => {
    const { url } = await started({ cert_file: 'server.pem', key_file: 'server-key.pem' });
    expect(url.protocol).toBe('https:');
    expect(await scrape(url, { ca: await pem('ca.pem') })).toBe('200 text/plain 0');
  });

  it('with client_ca_file, answers only a client with a certificate that CA signed, and counts the others', async () => {
    const { url, rec } = await started({
      cert_file: 'server.pem',
      key_file: 'server-key.pem',
      client_ca_file: 'ca.pem',
    });
    const ca = await pem('ca.pem');
    expect(await scrape(url, { ca, cert: await pem('client.pem'), key: await pem('client-key.pem') })).toBe(
      '200 text/plain 0',
    );
    expect(await scrape(url, { ca })).not.toMatch(/^200/);
    expect(rec.value('netmon_prometheus_tls_handshake_failures')).toBeGreaterThanOrEqual(1);
  });

  it('validate names the key of a certificate file that is missing', async () => {
    const config = prometheusExporterConfig.parse({
      tls: { cert_file: 'absent.pem', key_file: 'server-key.pem' },
    });
    const issues = await prometheusExporterFactory.validate?.(config, { configDir: TEST_TLS_DIR });
    expect(issues?.map((i) => i.key)).toEqual(['tls::cert_file']);
  });
});
