// A stand-in for DevZero's control plane ("dakr"): a real grpc-js server on 127.0.0.1 that loads netmon's
// dakr.proto, serves MetricsCollectorService.SendNetworkTrafficMetrics and OperatorHealthService.ReportHealth
// with unary handlers (as dakr's connect-go handlers are), and records every decoded request with its
// headers and whether its message arrived gzip-compressed. Failure injection: answer a status code (e.g.
// UNAVAILABLE) for a while, or stop the server and start it again on the same port (a real outage: the
// client's connections are torn down and new ones refused).
import {
  loadPackageDefinition,
  type Metadata,
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import {
  DAKR_PROTO,
  PROTO_LOADER_OPTIONS,
  type ReportHealthRequest,
  type SendNetworkTrafficMetricsRequest,
} from '../../packages/exporters/src/devzero/proto.js';

export interface ReceivedCall<T> {
  /** The decoded request, as proto-loader reads it (keepCase, longs as numbers, defaults filled). */
  request: T;
  /** Request headers (grpc-js strips grpc-encoding and the HTTP/2 pseudo-headers). */
  headers: Record<string, string>;
  /** The message's compressed flag was set (and grpc-encoding said gzip). */
  compressed: boolean;
  /** ms since the epoch. */
  time: number;
}

/** proto3 `optional` fields come with a synthetic oneof: `_field` names the field when it was on the wire. */
export type Decoded<T> = T & Record<string, unknown>;

const COMPRESSION = Symbol('dakr-stand-in.compression');

/**
 * Records the encoding the server used for each message. grpc-js does not expose a frame's compressed
 * flag; its base call decompresses with `decompressMessage(frame, encoding)`, where encoding is
 * 'identity' for a frame whose flag is 0. The interceptor wraps that method on its call and tags the
 * decoded message. If grpc-js renames it, the stand-in refuses to answer rather than guess.
 */
const observeCompression: ServerInterceptor = (_method, call) => {
  const base = call as unknown as {
    decompressMessage?: (frame: Buffer, encoding: string) => Buffer | Promise<Buffer>;
  };
  const original = base.decompressMessage;
  let encoding: string | undefined;
  if (typeof original === 'function') {
    base.decompressMessage = function (this: unknown, frame: Buffer, enc: string) {
      encoding = enc;
      return original.call(this, frame, enc);
    };
  }
  return new ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, nextMessage) => {
          if (message && typeof message === 'object') {
            Object.defineProperty(message, COMPRESSION, { value: encoding, enumerable: false });
          }
          nextMessage(message);
        },
      }),
  });
};

function headersOf(md: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = String(v);
  return out;
}

export class DakrStandIn {
  readonly traffic: ReceivedCall<Decoded<SendNetworkTrafficMetricsRequest>>[] = [];
  readonly health: ReceivedCall<Decoded<ReportHealthRequest>>[] = [];
  /** Answer this status to every call while set (the request is not recorded). */
  failWith?: { code: number; details?: string };
  /** Calls answered with `failWith`. */
  failed = 0;
  /** Delay before answering (ms); a call the client cancels meanwhile is neither recorded nor answered. */
  delayMs = 0;
  /** Calls the client cancelled while the stand-in delayed its answer. */
  cancelled = 0;
  private server?: Server;
  private readonly services: { metrics: ServiceDefinition; health: ServiceDefinition };

  private constructor(public port: number) {
    const pkg = loadPackageDefinition(loadSync(DAKR_PROTO, PROTO_LOADER_OPTIONS)) as unknown as {
      api: { v1: Record<string, { service: ServiceDefinition }> };
    };
    this.services = {
      metrics: pkg.api.v1.MetricsCollectorService.service,
      health: pkg.api.v1.OperatorHealthService.service,
    };
  }

  /** Starts on 127.0.0.1:`port` (0: a free port). */
  static async start(port = 0): Promise<DakrStandIn> {
    const s = new DakrStandIn(port);
    await s.listen();
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  private handler<T>(log: ReceivedCall<T>[], response: () => object): UntypedServiceImplementation[string] {
    return ((
      call: { request: T; metadata: Metadata; cancelled: boolean },
      callback: (err: { code: number; details: string } | null, res?: object) => void,
    ) => {
      const answer = () => {
        if (call.cancelled) {
          this.cancelled++;
          return;
        }
        if (this.failWith) {
          this.failed++;
          return callback({ code: this.failWith.code, details: this.failWith.details ?? 'stand-in failure' });
        }
        const encoding = (call.request as Record<symbol, string | undefined>)[COMPRESSION];
        if (encoding === undefined) {
          return callback({
            code: status.INTERNAL,
            details: 'stand-in: cannot observe compression (grpc-js internals changed)',
          });
        }
        log.push({
          request: call.request,
          headers: headersOf(call.metadata),
          compressed: encoding !== 'identity',
          time: Date.now(),
        });
        callback(null, response());
      };
      if (this.delayMs > 0) setTimeout(answer, this.delayMs);
      else answer();
    }) as UntypedServiceImplementation[string];
  }

  private async listen(): Promise<void> {
    const server = new Server({ interceptors: [observeCompression] });
    server.addService(this.services.metrics, {
      SendNetworkTrafficMetrics: this.handler(this.traffic, () => ({
        processed_count: this.traffic[this.traffic.length - 1]?.request.items.length ?? 0,
      })),
    });
    server.addService(this.services.health, {
      ReportHealth: this.handler(this.health, () => ({ collect_now: false })),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    this.server = server;
  }

  /** A real outage: every connection is torn down and the port closed. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.forceShutdown();
  }

  /** Back on the same port. */
  async restart(): Promise<void> {
    if (this.server) return;
    await this.listen();
  }

  /** Sums of the counters of every item received. */
  totals(): { tx_bytes: number; rx_bytes: number; tx_packets: number; rx_packets: number; items: number } {
    const t = { tx_bytes: 0, rx_bytes: 0, tx_packets: 0, rx_packets: 0, items: 0 };
    for (const c of this.traffic) {
      for (const i of c.request.items) {
        t.tx_bytes += i.tx_bytes;
        t.rx_bytes += i.rx_bytes;
        t.tx_packets += i.tx_packets;
        t.rx_packets += i.rx_packets;
        t.items++;
      }
    }
    return t;
  }

  /** Resolves once `cond` holds; throws after `timeoutMs`. */
  async waitFor(cond: () => boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`dakr stand-in: ${what} not met within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
