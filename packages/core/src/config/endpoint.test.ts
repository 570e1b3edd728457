import { describe, expect, it } from 'vitest';
import { endpoint, parseEndpoint, parseGrpcUrl } from './endpoint.js';

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
  });
});

describe('parseGrpcUrl', () => {
  it('gives host:port and TLS, with default ports', () => {
    expect(parseGrpcUrl('https://dakr.example.com', 'x')).toEqual({
      address: 'dakr.example.com:443',
      tls: true,
    });
    expect(parseGrpcUrl('http://127.0.0.1:4317/', 'x')).toEqual({ address: '127.0.0.1:4317', tls: false });
    expect(parseGrpcUrl('http://[::1]:4317', 'x')).toEqual({ address: '[::1]:4317', tls: false });
  });
  it('names what is wrong', () => {
    expect(parseGrpcUrl('collector:4317', 'http://c:4317')).toMatch(/scheme must be http/);
    expect(parseGrpcUrl('nonsense', 'http://c:4317')).toMatch(/not a URL; expected e.g. http:\/\/c:4317/);
    expect(parseGrpcUrl('http://c:4317/v1/metrics', 'x')).toMatch(/cannot have a path/);
    expect(parseGrpcUrl('http://u:p@c:4317', 'x')).toMatch(/credentials/);
  });
});
