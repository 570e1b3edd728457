// The HTTP servers' optional `tls` key (health_check, the prometheus exporter), read as the
// OpenTelemetry Collector reads the TLS server settings of its HTTP servers
// (https://github.com/open-telemetry/opentelemetry-collector/tree/main/config/configtls), and the one
// function that makes their server: node:http without it, node:https with it, the same handler either
// way, and the same limits on what a client may hold (timeouts, a connection cap) on every server made.
import { readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  createServer as createPlainServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import type { SecureContextOptions, SecureVersion } from 'node:tls';
import { z } from 'zod';
import type { ConfigIssue } from '../component.js';
import { defineMetrics } from '../telemetry/declare.js';
import type { Logger } from '../telemetry/logger.js';
import { duration } from './duration.js';
import { checkTlsFiles } from './endpoint.js';

const FILE_KEYS = ['cert_file', 'key_file', 'client_ca_file'] as const;
type FileKey = (typeof FILE_KEYS)[number];

const VERSIONS: Record<'1.2' | '1.3', SecureVersion> = { '1.2': 'TLSv1.2', '1.3': 'TLSv1.3' };

const pemFile = (what: string) =>
  z
    .string({
      error: (issue) =>
        issue.input === undefined ? `required: the PEM file of ${what}` : `expected a file path: ${what}`,
    })
    .min(1, `expected a file path: ${what}`);

/** A server's `tls` key: optional; set, the server speaks HTTPS. */
export function serverTls() {
  return z
    .strictObject({
      cert_file: pemFile('the certificate the server presents').describe(
        'PEM certificate the server presents, followed by its intermediate certificates if any.',
      ),
      key_file: pemFile('the private key of cert_file').describe(
        'PEM private key of cert_file (not encrypted).',
      ),
      client_ca_file: z
        .string()
        .min(1, 'expected a file path: the certificate authorities of client certificates')
        .optional()
        .describe(
          'PEM file of the certificate authorities that sign client certificates. Set: every client must present a certificate one of them signed (mutual TLS), or the handshake fails. Unset: any client is answered.',
        ),
      min_version: z
        .enum(['1.2', '1.3'], { error: 'expected "1.2" or "1.3"' })
        .default('1.2')
        .describe('Oldest TLS version accepted: "1.2" or "1.3".'),
      reload_interval: duration()
        .refine((ms) => ms === 0 || ms >= 1000, 'expected 0s (never) or at least 1s')
        .prefault('1m')
        .describe(
          'How often cert_file, key_file and client_ca_file are checked for a change (modification time, size, inode: a Kubernetes secret volume’s update counts). Changed files serve new connections from then on; files that do not load are logged and counted, and the previous certificate stays in use. 0s, or at least 1s; 0s: read once at start, so a renewed certificate needs a restart.',
        ),
    })
    .optional()
    .describe(
      'Serve HTTPS instead of plain HTTP (the OpenTelemetry Collector’s TLS server settings). Unset: plain HTTP. Relative file paths resolve against the config file.',
    );
}

export type ServerTlsConfig = NonNullable<z.output<ReturnType<typeof serverTls>>>;

/**
 * The load-time check of a server's `tls` key (a factory's `validate`): each file readable and PEM, the key
 * that of the certificate, the client CA a certificate. Issues name the key and the file, never what is in
 * it (a key file given by mistake is a secret).
 */
export async function checkServerTlsFiles(
  tls: ServerTlsConfig | undefined,
  configDir: string,
): Promise<ConfigIssue[]> {
  if (!tls) return [];
  // The client check reads ca_file as "the CAs I verify peers with", which is client_ca_file here.
  const issues = await checkTlsFiles(
    {
      insecure: false,
      insecure_skip_verify: false,
      ca_file: tls.client_ca_file,
      cert_file: tls.cert_file,
      key_file: tls.key_file,
    },
    configDir,
  );
  return issues.map((i) => (i.key === 'tls::ca_file' ? { ...i, key: 'tls::client_ca_file' } : i));
}

/**
 * The self-metrics of a server with TLS, named after the component (`netmon_health_check`,
 * `netmon_prometheus`); spread into the component's own declaration and recorded from `tlsStats`.
 */
export function serverTlsMetrics(prefix: string) {
  return defineMetrics({
    tlsHandshakeFailures: {
      name: `${prefix}_tls_handshake_failures`,
      kind: 'counter',
      unit: '{connection}',
      description:
        'Connections closed before a request because the TLS handshake failed: no client certificate or one tls::client_ca_file did not sign, plain HTTP or an older TLS version than tls::min_version, no handshake within 10 s.',
    },
    tlsReloads: {
      name: `${prefix}_tls_reloads`,
      kind: 'counter',
      unit: '{reload}',
      description:
        'Loads of changed TLS files (tls::reload_interval), by outcome: reloaded, or failed (the files do not load together; the previous certificate stays in use until they change again).',
      attributes: { outcome: 'reloaded or failed' },
    },
  });
}

export interface TlsServerStats {
  handshakeFailures: number;
  reloaded: number;
  reloadFailed: number;
}

/**
 * What one client may hold, and for how long. Node's own defaults let a connection that sends nothing, or
 * half its headers, stay for minutes, and take connections up to the file descriptor limit.
 */
export interface HttpServerLimits {
  /**
   * A request's headers must have arrived this long (ms) after the connection opened (its TLS handshake
   * ended) or, kept alive, after the request's first byte; if not, Node answers 408 and closes it. So a
   * connection that sends no request lasts no longer either.
   */
  headersTimeoutMs: number;
  /** The whole request likewise (ms); at least headersTimeoutMs. */
  requestTimeoutMs: number;
  /**
   * A connection that neither sends nor takes a byte for this long (ms) with a response in progress (a
   * client that stopped reading) is closed. Node grants a write still pending one more period.
   */
  idleTimeoutMs: number;
  /** A connection kept alive between requests is closed when no request follows within this (ms). */
  keepAliveTimeoutMs: number;
  /**
   * Most connections open at once. Past it the connection idle longest (no response in progress: kept
   * alive between requests, or no whole request yet, its TLS handshake included) is closed to admit the
   * new one; only when none is idle is the new one refused.
   */
  maxConnections: number;
}

export const HTTP_SERVER_LIMITS: Readonly<HttpServerLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  idleTimeoutMs: 30_000,
  // Longer than Prometheus' usual scrape interval (15–60 s), so its connection lasts between scrapes.
  keepAliveTimeoutMs: 65_000,
  maxConnections: 64,
});

/**
 * Why the server closed a connection at its cap: max_connections (the new one, refused on arrival: every
 * open one had a response in progress), evicted_idle (the connection idle longest, to admit a new one).
 */
export type ConnectionDropReason = 'max_connections' | 'evicted_idle';

export interface HttpServerOptions {
  /** The component's `tls` key: HTTPS when set, plain HTTP when not. */
  tls: ServerTlsConfig | undefined;
  /** Where relative TLS file paths resolve (the component's `settings.configDir`). */
  configDir: string;
  /** What differs from HTTP_SERVER_LIMITS. */
  limits?: Partial<HttpServerLimits>;
  handler: RequestListener;
  /** Names the component in errors: "health_check", "prometheus exporter". */
  who: string;
  /** The component's logger: TLS reloads, failed handshakes (debug) and the wildcard note go there. */
  logger: Logger;
  /** Told of every connection closed at the cap, after it is counted in `dropped`. */
  onDrop?: (reason: ConnectionDropReason) => void;
}

export interface HttpServer {
  /** node:http's Server, or node:https' (which is one): listen, close and closeAllConnections as usual. */
  readonly server: Server;
  /** For URLs in logs and status. */
  readonly scheme: 'http' | 'https';
  /** The limits in force. */
  readonly limits: Readonly<HttpServerLimits>;
  /** Connections closed at the cap, by reason. */
  readonly dropped: Readonly<Record<ConnectionDropReason, number>>;
  /** Counters for `serverTlsMetrics`; they stay 0 without TLS. */
  readonly tlsStats: Readonly<TlsServerStats>;
  /**
   * Checks the TLS files now and loads them if they changed since they were last loaded (or last failed
   * to). The timer of tls::reload_interval calls it; 'off' without TLS.
   */
  reloadTls(): Promise<'unchanged' | 'reloaded' | 'failed' | 'off'>;
}

/** A TLS server that has not finished its handshake by then is cut off: a connection it holds is not free. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Makes the server of an HTTP endpoint: plain HTTP, or HTTPS from the `tls` key, whose files are read
 * now (a file that cannot be read or does not load throws, naming the key and the path), held to `limits`
 * (HTTP_SERVER_LIMITS unless given). Once listening, it logs (info) when it serves every interface with no
 * client authentication, and with TLS checks the files every tls::reload_interval until closed.
 */
export function createHttpServer(opts: HttpServerOptions): HttpServer {
  const { tls, logger, who } = opts;
  const limits: Readonly<HttpServerLimits> = Object.freeze({ ...HTTP_SERVER_LIMITS, ...opts.limits });
  const options = serverOptions(limits);
  const stats: TlsServerStats = { handshakeFailures: 0, reloaded: 0, reloadFailed: 0 };
  let server: Server;
  let reloadTls: HttpServer['reloadTls'] = async () => 'off';
  if (!tls) {
    server = createPlainServer(options, opts.handler);
  } else {
    const paths = tlsPaths(tls, opts.configDir);
    let loaded = signature(paths);
    let failed: string | undefined;
    let checking: ReturnType<HttpServer['reloadTls']> | undefined;
    const material = readMaterial(tls, paths, who);
    try {
      server = createTlsServer(
        {
          handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
          ...options,
          ...material,
          requestCert: paths.client_ca_file !== undefined,
          rejectUnauthorized: paths.client_ca_file !== undefined,
        },
        opts.handler,
      );
    } catch (err) {
      throw new Error(`${who}: ${loadError(paths, err)}`);
    }
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      stats.handshakeFailures++;
      logger.debug(
        { remote: socket.remoteAddress, err: err.code ?? err.message },
        'TLS handshake failed; connection closed',
      );
    });
    const check = async (): Promise<'unchanged' | 'reloaded' | 'failed'> => {
      const now = await signatureAsync(paths);
      if (now === loaded || now === failed) return 'unchanged';
      try {
        (server as unknown as { setSecureContext(o: SecureContextOptions): void }).setSecureContext(
          readMaterial(tls, paths, who),
        );
      } catch (err) {
        failed = now;
        stats.reloadFailed++;
        logger.warn(
          { ...paths, err: loadError(paths, err) },
          'cannot reload the TLS certificate; still serving the previous one',
        );
        return 'failed';
      }
      loaded = now;
      failed = undefined;
      stats.reloaded++;
      logger.info({ ...paths }, 'TLS certificate reloaded');
      return 'reloaded';
    };
    reloadTls = () => {
      // Timer ticks and callers share one check: two loads of the same files would count twice.
      checking ??= check().finally(() => {
        checking = undefined;
      });
      return checking;
    };
    if (tls.reload_interval > 0) {
      let timer: NodeJS.Timeout | undefined;
      server.on('listening', () => {
        timer = setInterval(() => void reloadTls(), tls.reload_interval);
        timer.unref();
      });
      server.on('close', () => clearInterval(timer));
    }
  }
  server.once('listening', () => {
    const a = server.address() as AddressInfo;
    if ((a.address === '0.0.0.0' || a.address === '::') && tls?.client_ca_file === undefined) {
      logger.info(
        {
          endpoint: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
          tls: tls !== undefined,
          hint: 'anyone who can reach this port is answered: listen on 127.0.0.1 or the pod’s address, or require client certificates (tls::client_ca_file)',
        },
        'serving every interface unauthenticated',
      );
    }
  });
  // Without a 'timeout' listener Node destroys a socket idle this long; kept alive between requests,
  // keepAliveTimeout applies instead.
  server.setTimeout(limits.idleTimeoutMs);
  const dropped = capConnections(server, tls !== undefined, limits.maxConnections, opts.onDrop);
  return {
    server,
    scheme: tls ? 'https' : 'http',
    limits,
    dropped,
    tlsStats: stats,
    reloadTls: () => reloadTls(),
  };
}

function serverOptions(limits: HttpServerLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node enforces the two timeouts above only when it checks, every 30 s by default: a connection
    // with half its headers would live 40 s instead of 10.
    connectionsCheckingInterval: Math.max(
      10,
      Math.min(5000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 2)),
    ),
  };
}

/** An open connection, as the cap sees it. */
interface Connection {
  /** The TCP socket: closing it closes a TLS socket over it too. */
  readonly tcp: Socket;
  /** Finds it from the TLS socket over it, until the handshake's end links the two (TLS only). */
  readonly tuple?: string;
  /** Requests whose response has not ended (pipelined ones included). */
  responding: number;
  closed: boolean;
}

const tupleOf = (s: Socket) => `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;

/**
 * Holds `server` to `max` connections. Node's server.maxConnections refuses every new connection at the
 * limit, so clients that merely keep theirs alive (ordinary HTTP keep-alive) would lock every other
 * client out, Prometheus too; here the connection idle longest gives way instead, and only when every
 * connection has a response in progress is the new one refused (what those hold, the idle timeout
 * bounds).
 */
function capConnections(
  server: Server,
  tls: boolean,
  max: number,
  onDrop: ((reason: ConnectionDropReason) => void) | undefined,
): Record<ConnectionDropReason, number> {
  const dropped: Record<ConnectionDropReason, number> = { max_connections: 0, evicted_idle: 0 };
  let open = 0;
  // In the order they became idle: the first has been idle longest. A connection with half a request
  // counts as idle, as it holds nothing yet: a client sending its headers slowly gives way first.
  const idle = new Set<Connection>();
  // The socket requests arrive on → its connection: the TCP socket itself, or the TLS socket over it.
  const bySocket = new WeakMap<Socket, Connection>();
  // With TLS, connections whose handshake has not ended, by address and port of both ends.
  const handshaking = new Map<string, Connection>();
  const forget = (c: Connection) => {
    if (c.closed) return;
    c.closed = true;
    open--;
    idle.delete(c);
    if (c.tuple !== undefined && handshaking.get(c.tuple) === c) handshaking.delete(c.tuple);
  };
  const drop = (c: Connection, reason: ConnectionDropReason) => {
    forget(c);
    c.tcp.destroy();
    dropped[reason]++;
    onDrop?.(reason);
  };
  server.on('connection', (tcp: Socket) => {
    if (tcp.destroyed) return;
    const c: Connection = { tcp, responding: 0, closed: false, ...(tls ? { tuple: tupleOf(tcp) } : {}) };
    open++;
    idle.add(c);
    if (c.tuple === undefined) bySocket.set(tcp, c);
    else handshaking.set(c.tuple, c);
    tcp.once('close', () => forget(c));
    if (open <= max) return;
    const oldest = idle.values().next().value as Connection;
    drop(oldest, oldest === c ? 'max_connections' : 'evicted_idle');
  });
  if (tls) {
    // The TLS socket is another object than the TCP socket under it, with the same ends.
    server.on('secureConnection', (socket: Socket) => {
      const tuple = tupleOf(socket);
      const c = handshaking.get(tuple);
      if (!c) return;
      handshaking.delete(tuple);
      bySocket.set(socket, c);
    });
  }
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const c = bySocket.get(req.socket);
    if (!c || c.closed) return;
    if (c.responding++ === 0) idle.delete(c);
    // Every response emits 'close' once: sent whole, cut off, or its connection gone.
    res.once('close', () => {
      if (--c.responding === 0 && !c.closed) idle.add(c);
    });
  });
  return dropped;
}

type TlsPaths = { cert_file: string; key_file: string; client_ca_file?: string };

function tlsPaths(tls: ServerTlsConfig, configDir: string): TlsPaths {
  return {
    cert_file: resolve(configDir, tls.cert_file),
    key_file: resolve(configDir, tls.key_file),
    ...(tls.client_ca_file === undefined ? {} : { client_ca_file: resolve(configDir, tls.client_ca_file) }),
  };
}

/** What TLS is given: the files' bytes and the version floor. Throws naming the key and the path. */
function readMaterial(tls: ServerTlsConfig, paths: TlsPaths, who: string): SecureContextOptions {
  const read = (key: FileKey): Buffer | undefined => {
    const path = paths[key];
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(
        `${who}: cannot read tls::${key} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  };
  const ca = read('client_ca_file');
  return {
    cert: read('cert_file'),
    key: read('key_file'),
    ...(ca ? { ca } : {}),
    minVersion: VERSIONS[tls.min_version],
  };
}

/** OpenSSL's reason names no content, only what failed ("key values mismatch", "no start line"). */
function loadError(paths: TlsPaths, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes('cannot read tls::')) return message.slice(message.indexOf('cannot read'));
  const files = FILE_KEYS.filter((k) => paths[k] !== undefined)
    .map((k) => `tls::${k} ${paths[k]}`)
    .join(', ');
  return `${files} do not load: ${message}`;
}

// A file's identity and version: a rewrite changes mtime or size, a swap (rename, a Kubernetes secret
// volume's ..data link) changes the inode. stat follows symlinks, so a swapped link shows its new target.
function signature(paths: TlsPaths): string {
  return FILE_KEYS.map((k) => {
    const p = paths[k];
    if (p === undefined) return '-';
    try {
      const s = statSync(p);
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? 'error';
    }
  }).join('|');
}

async function signatureAsync(paths: TlsPaths): Promise<string> {
  const parts = await Promise.all(
    FILE_KEYS.map(async (k) => {
      const p = paths[k];
      if (p === undefined) return '-';
      try {
        const s = await stat(p);
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'error';
      }
    }),
  );
  return parts.join('|');
}
