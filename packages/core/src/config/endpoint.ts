// Addresses in config, so that every component accepts and explains the same forms:
// - listen addresses ("0.0.0.0:9464", "[::]:9464", ":9464") of the components that serve HTTP
//   (health_check, the prometheus exporter);
// - what a gRPC client needs (the endpoint it dials, TLS, headers), shared by the otlp and devzero
//   exporters and read as the OpenTelemetry Collector's configgrpc and configtls read them
//   (https://github.com/open-telemetry/opentelemetry-collector/tree/main/config/configgrpc).
import { X509Certificate } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import type { ConfigIssue } from '../component.js';
import { redactCredentials } from './source.js';

/** host:port or [v6]:port; an empty host means every interface. */
export const ENDPOINT_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[^\s:]*):\d{1,5}$/;

/**
 * An IPv6 address without brackets, then the port: `fd00::5:9464`. Accepted because a pod's address from
 * the downward API comes bare (`${env:POD_IP}:9464`); the port is required, so the last group is the port.
 */
function isBareV6Endpoint(text: string): boolean {
  const i = text.lastIndexOf(':');
  return /^\d{1,5}$/.test(text.slice(i + 1)) && isIPv6(text.slice(0, i));
}

/** A config field holding a listen address, with its default. */
export function endpoint(defaultValue: string) {
  return z
    .string()
    .refine(
      (e) => ENDPOINT_PATTERN.test(e) || isBareV6Endpoint(e),
      `expected host:port, e.g. ${defaultValue} or [::]:${portOf(defaultValue)}`,
    )
    .refine((e) => portOf(e) <= 65535, 'the port must be 0 – 65535 (0 picks a free one)')
    .default(defaultValue);
}

/** Splits "host:port" / "[v6]:port" / "v6:port" into listen options; an empty host is 0.0.0.0. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}

function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

// ---------------------------------------------------------------------------------------------------------
// gRPC clients

/** A gRPC client's endpoint as written: the address to dial and the scheme, if one was written. */
export interface GrpcEndpoint {
  /** `host:port` as grpc-js dials it, IPv6 in brackets. */
  address: string;
  scheme?: 'http' | 'https';
}

/** Where a gRPC client connects, and whether over TLS. */
export interface GrpcTarget {
  /** `host:port`, IPv6 in brackets. */
  address: string;
  tls: boolean;
}

export interface GrpcEndpointOptions {
  /** Shown in errors: what a good value looks like. */
  example: string;
  /**
   * A URL with a scheme may leave the port out: 443 for https://, 80 for http:// (devzero: the DAKR_URL
   * of zxporter-netmon installs is `https://dakr.devzero.io`). Otherwise the port is required, as the
   * Collector's configgrpc requires it.
   */
  defaultPorts?: boolean;
}

const HOST_NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * Parses a gRPC endpoint: `host:port`, `[v6]:port`, or either after `http://` / `https://` (the Collector
 * strips those; what they mean for TLS is `grpcTarget`'s business). Returns the reason when it is none of
 * them: gRPC methods live at fixed paths from the root, so a path, query or credentials are mistakes worth
 * naming rather than ignoring.
 */
export function parseGrpcEndpoint(text: string, opts: GrpcEndpointOptions): GrpcEndpoint | string {
  const parsed = parseEndpointText(text, opts);
  // The reason quotes the endpoint as written: never with the credentials it must not carry.
  return typeof parsed === 'string' ? redactCredentials(parsed) : parsed;
}

function parseEndpointText(text: string, opts: GrpcEndpointOptions): GrpcEndpoint | string {
  const expected = `expected host:port, e.g. ${opts.example}`;
  if (text === '') return `the endpoint is empty; ${expected}`;
  if (/\s/.test(text)) return `"${text}" contains white space; ${expected}`;
  let rest = text;
  let scheme: GrpcEndpoint['scheme'];
  const s = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (s) {
    const name = s[1].toLowerCase();
    if (name !== 'http' && name !== 'https') {
      return `"${text}": the scheme, when given, must be http:// or https://, not ${s[1]}://; ${expected}`;
    }
    scheme = name;
    rest = text.slice(s[0].length);
    if (rest.endsWith('/')) rest = rest.slice(0, -1);
  }
  const cut = rest.search(/[/?#]/);
  if (cut >= 0) {
    if (rest[cut] === '/') {
      return `"${text}": gRPC calls go to fixed service paths from the root, so the endpoint cannot have a path (${rest.slice(cut)})`;
    }
    return `"${text}": the endpoint cannot carry a query or a fragment`;
  }
  if (rest.includes('@')) {
    return `"${text}": the endpoint cannot carry credentials (put them in the exporter's headers or token)`;
  }
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(rest);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2];
    if (!isIPv6(host)) return `"${text}": [${host}] is not an IPv6 address`;
    host = `[${host}]`;
  } else {
    const colons = rest.split(':').length - 1;
    if (colons > 1) {
      return `"${text}": an IPv6 address goes in brackets, e.g. [::1]:4317`;
    }
    [host, port] = colons === 1 ? (rest.split(':') as [string, string]) : [rest, undefined];
    if (host === '') return `"${text}": the host is missing; ${expected}`;
    if (!HOST_NAME.test(host)) return `"${text}": "${host}" is not a host name or address`;
  }
  if (port === undefined) {
    if (!(scheme && opts.defaultPorts)) return `"${text}": the port is missing; ${expected}`;
    port = scheme === 'https' ? '443' : '80';
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return `"${text}": the port must be a number from 1 to 65535, not "${port}"`;
  }
  return { address: `${host}:${Number(port)}`, ...(scheme ? { scheme } : {}) };
}

/** A config field holding a gRPC endpoint; the syntax is checked here, TLS by the component (`grpcTarget`). */
export function grpcEndpoint(opts: GrpcEndpointOptions) {
  return z
    .string({
      error: (issue) =>
        issue.input === undefined
          ? `required: host:port, e.g. ${opts.example}`
          : `expected a string: host:port, e.g. ${opts.example}`,
    })
    .superRefine((text, ctx) => {
      const e = parseGrpcEndpoint(text, opts);
      if (typeof e === 'string') ctx.addIssue({ code: 'custom', message: e });
    });
}

/**
 * The `tls` key of a gRPC client, as the Collector's configtls client settings. `endpointNote` ends the
 * description of `insecure`, for a component whose endpoint has a rule of its own (devzero's URLs).
 */
export function grpcTls(endpointNote = '') {
  return z
    .strictObject({
      insecure: z
        .boolean()
        .default(false)
        .describe(
          `true: plaintext gRPC (no TLS), unless the endpoint starts with https:// or ca_file is set (as the Collector’s configtls). false: TLS.${endpointNote}`,
        ),
      ca_file: z
        .string()
        .min(1)
        .optional()
        .describe(
          'PEM file of the certificate authorities that sign the server’s certificate. Unset: the system roots. Set, it turns TLS on even with insecure: true (as the Collector).',
        ),
      cert_file: z
        .string()
        .min(1)
        .optional()
        .describe('PEM client certificate for mutual TLS (with key_file).'),
      key_file: z.string().min(1).optional().describe('PEM private key of cert_file.'),
      insecure_skip_verify: z
        .boolean()
        .default(false)
        .describe('With TLS, accept any server certificate (no chain or host name check). For tests only.'),
    })
    .prefault({})
    .superRefine((t, ctx) => {
      if ((t.cert_file === undefined) !== (t.key_file === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: [t.cert_file === undefined ? 'cert_file' : 'key_file'],
          message: 'cert_file and key_file go together (mutual TLS needs both)',
        });
      }
    })
    .describe(
      'TLS towards the endpoint: on unless insecure is true (as in the OpenTelemetry Collector). Relative file paths resolve against the config file.',
    );
}

export type GrpcTlsConfig = z.output<ReturnType<typeof grpcTls>>;

export interface GrpcTargetOptions extends GrpcEndpointOptions {
  /**
   * true (devzero, zxporter-netmon's DAKR_URL): a scheme alone decides TLS, http:// plaintext and https://
   * TLS, whatever `tls.insecure` says. false (the Collector's rule): https:// turns TLS on, and http:// is
   * taken only with TLS off (`tls.insecure: true`), where it means what it says.
   */
  schemeDecides?: boolean;
}

/**
 * Where to connect and whether over TLS, or the reason the endpoint and `tls` do not go together.
 *
 * The Collector's rule (configgrpc and configtls): TLS is on unless `tls.insecure` is true and no
 * `tls.ca_file` is set; an endpoint starting with https:// is always TLS. The Collector strips an http://
 * prefix and still decides by `tls`, so `http://collector:4317` without `tls.insecure` dials TLS: a
 * config that says plaintext and gets TLS. That combination is refused here, with the fix, rather than
 * followed silently; with `tls.insecure: true` http:// is accepted (and means plaintext, as there).
 */
export function grpcTarget(
  endpoint: string,
  tls: GrpcTlsConfig,
  opts: GrpcTargetOptions,
): GrpcTarget | string {
  const e = parseGrpcEndpoint(endpoint, opts);
  if (typeof e === 'string') return e;
  const hostPort = e.address;
  if (opts.schemeDecides && e.scheme) {
    if (e.scheme === 'http') {
      const set: string[] = (['ca_file', 'cert_file', 'key_file'] as const).filter(
        (k) => tls[k] !== undefined,
      );
      if (tls.insecure_skip_verify) set.push('insecure_skip_verify');
      if (set.length > 0) {
        return `"${endpoint}": http:// means plaintext gRPC, so tls::${set.join(', tls::')} would be ignored; use https:// (or ${hostPort} with tls) for TLS`;
      }
    }
    return { address: e.address, tls: e.scheme === 'https' };
  }
  const tlsOn = e.scheme === 'https' || !tls.insecure || tls.ca_file !== undefined;
  if (e.scheme === 'http' && tlsOn) {
    const why = tls.insecure
      ? 'tls::ca_file turns TLS on'
      : 'TLS is on unless tls::insecure is true, as in the OpenTelemetry Collector, whatever the scheme';
    return `"${endpoint}": http:// does not turn TLS off (${why}); for plaintext write ${hostPort} with tls: {insecure: true}; for TLS write ${hostPort} or https://${hostPort}`;
  }
  return { address: e.address, tls: tlsOn };
}

/**
 * The load-time check of a `tls` key (a factory's `validate`): each file it names, resolved against the
 * config file's directory, must be readable — so a wrong path fails `netmon validate`, not the first send.
 */
export async function checkTlsFiles(tls: GrpcTlsConfig, configDir: string): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  for (const key of ['ca_file', 'cert_file', 'key_file'] as const) {
    const file = tls[key];
    if (file === undefined) continue;
    const path = resolve(configDir, file);
    try {
      await access(path, constants.R_OK);
    } catch (err) {
      issues.push({
        key: `tls::${key}`,
        message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      });
    }
  }
  if (issues.length > 0) return issues;
  // What TLS will do with them at start, so a file that is not PEM fails validation, not the start.
  const pem = async (key: 'ca_file' | 'cert_file' | 'key_file') =>
    tls[key] === undefined ? undefined : readFile(resolve(configDir, tls[key]));
  const [ca, cert, key] = await Promise.all([pem('ca_file'), pem('cert_file'), pem('key_file')]);
  const check = (issueKey: 'ca_file' | 'cert_file', use: () => unknown) => {
    try {
      use();
    } catch (err) {
      issues.push({
        key: `tls::${issueKey}`,
        message: `${resolve(configDir, tls[issueKey] ?? '')} is not usable: ${(err as Error).message}`,
      });
    }
  };
  // TLS takes a CA file without a certificate in it and fails only when verifying: parse its first one.
  if (ca) check('ca_file', () => new X509Certificate(ca));
  if (cert && key) check('cert_file', () => createSecureContext({ cert, key }));
  return issues;
}

/** What grpc-js `credentials.createSsl` takes, read from a `tls` key's files. */
export interface TlsMaterial {
  rootCerts: Buffer | null;
  privateKey: Buffer | null;
  certChain: Buffer | null;
  /** insecure_skip_verify: no chain or host name check. */
  skipVerify: boolean;
}

/** Reads the TLS files; throws `<who>: cannot read tls::ca_file <path>: ENOENT` naming key and file. */
export function readTlsMaterial(tls: GrpcTlsConfig, configDir: string, who: string): TlsMaterial {
  const read = (key: 'ca_file' | 'cert_file' | 'key_file'): Buffer | null => {
    const file = tls[key];
    if (file === undefined) return null;
    const path = resolve(configDir, file);
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new Error(`${who}: cannot read tls::${key} ${path}: ${code}`);
    }
  };
  return {
    rootCerts: read('ca_file'),
    privateKey: read('key_file'),
    certChain: read('cert_file'),
    skipVerify: tls.insecure_skip_verify,
  };
}

/** gRPC metadata keys: lowercase HTTP/2 header names; `grpc-` is reserved, `-bin` would need bytes. */
const HEADER_KEY = /^[0-9a-z_.-]+$/;

/**
 * The `headers` key of a gRPC client: metadata sent with every call. `reserved` names headers the
 * component sets itself (refused here, with `why`).
 */
export function grpcHeaders(reserved: readonly string[] = [], why = '') {
  return z
    .record(z.string(), z.string())
    .default({})
    .superRefine((h, ctx) => {
      for (const key of Object.keys(h)) {
        if (!HEADER_KEY.test(key)) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: 'header names are lowercase letters, digits, "-", "_" and "."',
          });
        } else if (key.startsWith('grpc-') || key.endsWith('-bin')) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `"${key}": names starting grpc- are reserved and names ending -bin carry binary values`,
          });
        } else if (reserved.includes(key)) {
          ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is set by the exporter${why}` });
        }
      }
    });
}
