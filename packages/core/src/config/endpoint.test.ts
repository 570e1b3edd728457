import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TEST_TLS_DIR } from '../testkit/tls.js';
import {
  checkTlsFiles,
  endpoint,
  grpcEndpoint,
  grpcHeaders,
  grpcTarget,
  grpcTls,
  parseEndpoint,
  parseGrpcEndpoint,
  readTlsMaterial,
} from './endpoint.js';

describe('endpoint', () => {
  it('accepts host:port, [v6]:port and :port, with its default', () => {
    const schema = endpoint('0.0.0.0:9464');
    expect(schema.parse(undefined)).toBe('0.0.0.0:9464');
    for (const ok of ['127.0.0.1:0', '[::]:9464', ':9464', 'metrics.local:65535'])
      expect(schema.parse(ok)).toBe(ok);
    for (const bad of ['9464', '127.0.0.1', '127.0.0.1:65536', 'a b:1', '[::]']) {
      expect(schema.safeParse(bad).success, bad).toBe(false);
    }
    expect(schema.safeParse('9464').error?.issues[0].message).toBe(
      'expected host:port, e.g. 0.0.0.0:9464 or [::]:9464',
    );
  });

  it('splits into listen options; no host means every interface', () => {
    expect(parseEndpoint('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseEndpoint('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseEndpoint(':9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    // A pod's IPv6 address from the downward API comes without brackets.
    expect(endpoint('127.0.0.1:9464').parse('fd00::5:9464')).toBe('fd00::5:9464');
    expect(parseEndpoint('fd00::5:9464')).toEqual({ host: 'fd00::5', port: 9464 });
    expect(endpoint('127.0.0.1:9464').safeParse('fd00::5').success).toBe(false);
  });
});

const COLLECTOR = { example: 'collector:4317' };
const DAKR = { example: 'dakr:443', defaultPorts: true, schemeDecides: true };
const tls = (t: Record<string, unknown> = {}) => grpcTls().parse(t);

describe('parseGrpcEndpoint', () => {
  it('takes host:port, [v6]:port, with or without http:// or https://', () => {
    expect(parseGrpcEndpoint('localhost:4317', COLLECTOR)).toEqual({ address: 'localhost:4317' });
    expect(parseGrpcEndpoint('otel-collector.observability.svc:4317', COLLECTOR)).toEqual({
      address: 'otel-collector.observability.svc:4317',
    });
    expect(parseGrpcEndpoint('10.0.0.7:4317', COLLECTOR)).toEqual({ address: '10.0.0.7:4317' });
    expect(parseGrpcEndpoint('[::1]:4317', COLLECTOR)).toEqual({ address: '[::1]:4317' });
    expect(parseGrpcEndpoint('[fd00::a:1]:4317', COLLECTOR)).toEqual({ address: '[fd00::a:1]:4317' });
    expect(parseGrpcEndpoint('https://c:4317', COLLECTOR)).toEqual({ address: 'c:4317', scheme: 'https' });
    expect(parseGrpcEndpoint('http://[::1]:4317/', COLLECTOR)).toEqual({
      address: '[::1]:4317',
      scheme: 'http',
    });
    expect(parseGrpcEndpoint('HTTPS://c:04317', COLLECTOR)).toEqual({ address: 'c:4317', scheme: 'https' });
  });

  it('needs the port, except after a scheme where default ports apply (DAKR_URL)', () => {
    expect(parseGrpcEndpoint('collector', COLLECTOR)).toBe(
      '"collector": the port is missing; expected host:port, e.g. collector:4317',
    );
    expect(parseGrpcEndpoint('https://collector', COLLECTOR)).toBe(
      '"https://collector": the port is missing; expected host:port, e.g. collector:4317',
    );
    expect(parseGrpcEndpoint('https://dakr.devzero.io', DAKR)).toEqual({
      address: 'dakr.devzero.io:443',
      scheme: 'https',
    });
    expect(parseGrpcEndpoint('http://dakr', DAKR)).toEqual({ address: 'dakr:80', scheme: 'http' });
    expect(parseGrpcEndpoint('dakr', DAKR)).toMatch(/the port is missing/);
  });

  it('names what is wrong', () => {
    const cases: [string, string][] = [
      ['', 'the endpoint is empty; expected host:port, e.g. collector:4317'],
      ['c:4317 ', '"c:4317 " contains white space; expected host:port, e.g. collector:4317'],
      [
        'grpc://c:4317',
        '"grpc://c:4317": the scheme, when given, must be http:// or https://, not grpc://; expected host:port, e.g. collector:4317',
      ],
      [
        'dns:///c:4317',
        '"dns:///c:4317": the scheme, when given, must be http:// or https://, not dns://; expected host:port, e.g. collector:4317',
      ],
      [
        'http://c:4317/v1/metrics',
        '"http://c:4317/v1/metrics": gRPC calls go to fixed service paths from the root, so the endpoint cannot have a path (/v1/metrics)',
      ],
      [
        'c:4317/',
        '"c:4317/": gRPC calls go to fixed service paths from the root, so the endpoint cannot have a path (/)',
      ],
      ['http://c:4317?x=1', '"http://c:4317?x=1": the endpoint cannot carry a query or a fragment'],
      [
        'http://u:p@c:4317',
        '"http://***@c:4317": the endpoint cannot carry credentials (put them in the exporter\'s headers or token)',
      ],
      ['::1:4317', '"::1:4317": an IPv6 address goes in brackets, e.g. [::1]:4317'],
      ['[::g]:4317', '"[::g]:4317": [::g] is not an IPv6 address'],
      ['[::1]', '"[::1]": the port is missing; expected host:port, e.g. collector:4317'],
      [':4317', '":4317": the host is missing; expected host:port, e.g. collector:4317'],
      ['c_#:1', '"c_#:1": the endpoint cannot carry a query or a fragment'],
      ['c!:1', '"c!:1": "c!" is not a host name or address'],
      ['c:0', '"c:0": the port must be a number from 1 to 65535, not "0"'],
      ['c:65536', '"c:65536": the port must be a number from 1 to 65535, not "65536"'],
      ['c:43x', '"c:43x": the port must be a number from 1 to 65535, not "43x"'],
    ];
    for (const [text, reason] of cases) expect(parseGrpcEndpoint(text, COLLECTOR), text).toBe(reason);
  });

  it('as a config field, the error is the issue at the key', () => {
    const schema = z.strictObject({ endpoint: grpcEndpoint(COLLECTOR) });
    const issue = schema.safeParse({ endpoint: 'collector' }).error?.issues[0];
    expect(issue?.path).toEqual(['endpoint']);
    expect(issue?.message).toBe('"collector": the port is missing; expected host:port, e.g. collector:4317');
    expect(schema.parse({ endpoint: '[::1]:4317' })).toEqual({ endpoint: '[::1]:4317' });
  });
});

describe('grpcTarget', () => {
  it("the Collector's rule: TLS unless tls.insecure (and no ca_file); https:// always TLS", () => {
    expect(grpcTarget('c:4317', tls(), COLLECTOR)).toEqual({ address: 'c:4317', tls: true });
    expect(grpcTarget('c:4317', tls({ insecure: true }), COLLECTOR)).toEqual({
      address: 'c:4317',
      tls: false,
    });
    expect(grpcTarget('[::1]:4317', tls({ insecure: true }), COLLECTOR)).toEqual({
      address: '[::1]:4317',
      tls: false,
    });
    // configtls: insecure with a CA still loads a TLS config.
    expect(grpcTarget('c:4317', tls({ insecure: true, ca_file: 'ca.pem' }), COLLECTOR)).toEqual({
      address: 'c:4317',
      tls: true,
    });
    // configgrpc: an https:// endpoint is TLS whatever insecure says.
    expect(grpcTarget('https://c:4317', tls({ insecure: true }), COLLECTOR)).toEqual({
      address: 'c:4317',
      tls: true,
    });
    expect(grpcTarget('https://c:4317', tls(), COLLECTOR)).toEqual({ address: 'c:4317', tls: true });
    // http:// with TLS off means what it says.
    expect(grpcTarget('http://c:4317', tls({ insecure: true }), COLLECTOR)).toEqual({
      address: 'c:4317',
      tls: false,
    });
  });

  it('refuses http:// where the Collector would dial TLS, with the fix', () => {
    expect(grpcTarget('http://c:4317', tls(), COLLECTOR)).toBe(
      '"http://c:4317": http:// does not turn TLS off (TLS is on unless tls::insecure is true, as in the OpenTelemetry Collector, whatever the scheme); for plaintext write c:4317 with tls: {insecure: true}; for TLS write c:4317 or https://c:4317',
    );
    expect(grpcTarget('http://c:4317', tls({ insecure: true, ca_file: 'ca.pem' }), COLLECTOR)).toMatch(
      /^"http:\/\/c:4317": http:\/\/ does not turn TLS off \(tls::ca_file turns TLS on\)/,
    );
  });

  it("devzero's DAKR_URL form: the scheme decides, host:port follows the Collector", () => {
    expect(grpcTarget('https://dakr.devzero.io', tls(), DAKR)).toEqual({
      address: 'dakr.devzero.io:443',
      tls: true,
    });
    expect(grpcTarget('https://dakr.devzero.io', tls({ insecure: true }), DAKR)).toEqual({
      address: 'dakr.devzero.io:443',
      tls: true,
    });
    // zxporter-netmon dials http:// in plaintext (h2c): so does netmon, without tls.insecure.
    expect(grpcTarget('http://127.0.0.1:9090', tls(), DAKR)).toEqual({
      address: '127.0.0.1:9090',
      tls: false,
    });
    expect(grpcTarget('dakr.devzero.io:443', tls(), DAKR)).toEqual({
      address: 'dakr.devzero.io:443',
      tls: true,
    });
    expect(grpcTarget('10.0.0.5:9090', tls({ insecure: true }), DAKR)).toEqual({
      address: '10.0.0.5:9090',
      tls: false,
    });
    expect(grpcTarget('http://dakr:9090', tls({ ca_file: 'ca.pem', insecure_skip_verify: true }), DAKR)).toBe(
      '"http://dakr:9090": http:// means plaintext gRPC, so tls::ca_file, tls::insecure_skip_verify would be ignored; use https:// (or dakr:9090 with tls) for TLS',
    );
  });
});

describe('grpcTls', () => {
  it('defaults to TLS with the system roots; cert and key go together', () => {
    expect(tls()).toEqual({ insecure: false, insecure_skip_verify: false });
    const r = grpcTls().safeParse({ cert_file: 'c.pem' });
    expect(r.error?.issues.map((i) => `${i.path.join('::')}: ${i.message}`)).toEqual([
      'key_file: cert_file and key_file go together (mutual TLS needs both)',
    ]);
    expect(grpcTls().safeParse({ insecure: 'yes' }).success).toBe(false);
    expect(grpcTls().safeParse({ server_name: 'x' }).success).toBe(false);
  });

  it('reads the files against the config directory, naming key and path when one is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'netmon-tls-'));
    try {
      await writeFile(join(dir, 'ca.pem'), 'CA');
      await writeFile(join(dir, 'c.pem'), 'CERT');
      await writeFile(join(dir, 'k.pem'), 'KEY');
      const t = tls({ ca_file: 'ca.pem', cert_file: 'c.pem', key_file: 'k.pem', insecure_skip_verify: true });
      // Readable, but not PEM: what TLS would refuse at start is a configuration problem.
      expect(await checkTlsFiles(t, dir)).toEqual([
        {
          key: 'tls::ca_file',
          message: expect.stringMatching(new RegExp(`^${join(dir, 'ca.pem')} is not usable: `)),
        },
        {
          key: 'tls::cert_file',
          message: expect.stringMatching(new RegExp(`^${join(dir, 'c.pem')} is not usable: `)),
        },
      ]);
      const real = TEST_TLS_DIR;
      expect(
        await checkTlsFiles(
          tls({ ca_file: 'ca.pem', cert_file: 'client.pem', key_file: 'client-key.pem' }),
          real,
        ),
      ).toEqual([]);
      expect(
        await checkTlsFiles(tls({ ca_file: 'nope.pem', cert_file: 'c.pem', key_file: 'k.pem' }), dir),
      ).toEqual([{ key: 'tls::ca_file', message: `cannot read ${join(dir, 'nope.pem')}: ENOENT` }]);
      const m = readTlsMaterial(t, dir, 'x exporter');
      expect([String(m.rootCerts), String(m.certChain), String(m.privateKey), m.skipVerify]).toEqual([
        'CA',
        'CERT',
        'KEY',
        true,
      ]);
      expect(readTlsMaterial(tls(), dir, 'x')).toEqual({
        rootCerts: null,
        privateKey: null,
        certChain: null,
        skipVerify: false,
      });
      expect(() => readTlsMaterial(tls({ ca_file: 'nope.pem' }), dir, 'x exporter')).toThrow(
        `x exporter: cannot read tls::ca_file ${join(dir, 'nope.pem')}: ENOENT`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('grpcHeaders', () => {
  const issues = (h: unknown) =>
    grpcHeaders(['authorization'], ' (from token)')
      .safeParse(h)
      .error?.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
  it('takes lowercase names, refuses reserved, binary and the component’s own', () => {
    expect(grpcHeaders().parse(undefined)).toEqual({});
    expect(grpcHeaders().parse({ 'x-scope-orgid': 'shop' })).toEqual({ 'x-scope-orgid': 'shop' });
    expect(issues({ Authorization: 'x' })).toEqual([
      'Authorization: header names are lowercase letters, digits, "-", "_" and "."',
    ]);
    expect(issues({ 'grpc-timeout': '1S', 'trace-bin': 'x' })).toEqual([
      'grpc-timeout: "grpc-timeout": names starting grpc- are reserved and names ending -bin carry binary values',
      'trace-bin: "trace-bin": names starting grpc- are reserved and names ending -bin carry binary values',
    ]);
    expect(issues({ authorization: 'Bearer x' })).toEqual([
      'authorization: "authorization" is set by the exporter (from token)',
    ]);
  });
});
