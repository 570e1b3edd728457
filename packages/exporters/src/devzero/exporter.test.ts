import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  type BatchSink,
  type ComponentSettings,
  type DnsAnswerInit,
  DnsBatch,
  type DnsLookupInit,
  DnsRcode,
  DnsType,
  defineExporter,
  defineReceiver,
  type Extension,
  FlowBatch,
  type FlowInit,
  NETMON_VERSION,
  Registry,
  resolveConfig,
  Service,
  StatusBoard,
  silentLogger,
} from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import { type HttpRoutes, MetadataStore, type RouteHandler } from '@netmon/extensions';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import protobuf from 'protobufjs';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { DakrStandIn } from '../../../../test/harness/dakr-stand-in.js';
import { startAckWorker } from '../../../../test/harness/grpc-ack-worker.js';
import { DakrClient, isRetryable } from './client.js';
import { dakrTarget, devzeroExporterConfig } from './config.js';
import type { DevzeroExporter } from './exporter.js';
import { devzeroExporterFactory } from './factory.js';
import { componentName, healthOf, overallHealth } from './heartbeat.js';
import { Interval, Ip2Domain, type LookupPods } from './interval.js';
import { goTime } from './json.js';
import { REPORT_HEALTH_PATH, SEND_TRAFFIC_PATH } from './proto.js';
import {
  buildPayloads,
  domainBytes,
  ITEM_BUDGET_BYTES,
  intervalItems,
  payloadBytes,
  RECENT_DOMAINS_BYTES,
  REQUEST_BUDGET_BYTES,
  toRequest,
} from './requests.js';
import { readState } from './state.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function flow(over: Partial<FlowInit> = {}): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol: 6,
    srcIp: '10.0.1.34',
    srcPort: 40000,
    dstIp: '10.0.2.19',
    dstPort: 8080,
    txBytes: 1000,
    rxBytes: 20000,
    txPackets: 10,
    rxPackets: 20,
    ...over,
  };
}

const dnsSample = () =>
  DnsBatch.from([
    {
      time: T0 + 1500,
      clientIp: '10.0.1.34',
      question: 'api.stripe.com',
      answers: [
        { name: 'api.stripe.com', type: DnsType.CNAME, ttl: 30, target: 'edge.stripe.com' },
        { name: 'edge.stripe.com', type: DnsType.A, ttl: 30, ip: '52.1.2.3' },
        { name: 'edge.stripe.com', type: DnsType.AAAA, ttl: 30, ip: '2600:1f18::5' },
      ],
    },
  ]);

// One stand-in for the whole file. The conformance suite needs its backend's URL when it is declared, and
// a backend whose timers live on another thread, or its handle check would see the server's.
const standIn = await DakrStandIn.start();
const conformanceBackend = await startAckWorker([SEND_TRAFFIC_PATH, REPORT_HEALTH_PATH]);
afterAll(async () => {
  await standIn.stop();
  await conformanceBackend.close();
});

describeConformance(devzeroExporterFactory, { signal: 'dns', sample: dnsSample });
describeConformance(devzeroExporterFactory, {
  config: {
    endpoint: conformanceBackend.endpoint,
    token: 't',
    flush_interval: '1h',
    heartbeat_interval: '1h',
  },
});

/** A route table like health_check's, for tests without the agent package. */
class Routes implements HttpRoutes, Extension {
  readonly routes = new Map<string, RouteHandler>();
  async shutdown(): Promise<void> {}
  private readonly owners = new Map<string, string>();
  route(path: string, handler: RouteHandler, owner = 'x'): () => void {
    if (this.routes.has(path)) throw new Error(`${path} is already served by ${this.owners.get(path)}`);
    this.routes.set(path, handler);
    this.owners.set(path, owner);
    return () => this.routes.delete(path);
  }
  /** Calls the handler with a fake response and returns what it wrote. */
  get(path: string): { status: number; headers: Record<string, string>; body: string } {
    const out = { status: 0, headers: {} as Record<string, string>, body: '' };
    const res = {
      writeHead: (s: number, h: Record<string, string>) => {
        out.status = s;
        out.headers = h;
      },
      end: (b: string) => {
        out.body = b;
      },
    };
    // biome-ignore lint/suspicious/noExplicitAny: a minimal ServerResponse.
    this.routes.get(path)?.({} as any, res as any);
    return out;
  }
}

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps what it is given (pino's call shapes: (fields, msg) or (msg)). */
function captureLogger(lines: LogLine[]) {
  const at =
    (level: string) =>
    (a: unknown, b?: string): void => {
      if (typeof a === 'string') lines.push({ level, msg: a, fields: {} });
      else lines.push({ level, msg: b ?? '', fields: (a ?? {}) as Record<string, unknown> });
    };
  const logger: Record<string, unknown> = {
    level: 'debug',
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
  };
  logger.child = () => logger;
  return logger as unknown as ComponentSettings['logger'];
}

interface Made {
  exporter: DevzeroExporter;
  logs: LogLine[];
  board: StatusBoard;
  settings: ComponentSettings;
  stop(): Promise<void>;
}

const live: Made[] = [];
afterEach(async () => {
  for (const m of live.splice(0)) await m.stop();
  standIn.traffic.length = 0;
  standIn.health.length = 0;
  standIn.failWith = undefined;
  standIn.failed = 0;
  standIn.delayMs = 0;
  if (!standIn.running) await standIn.restart();
});

/** Creates the exporter through its factory, serving flows (and dns) as the Service does. */
async function make(
  config: Record<string, unknown>,
  opts: { dns?: boolean; routes?: Routes; configDir?: string; k8s?: Extension } = {},
) {
  const board = new StatusBoard();
  const extensions = new Map<string, Extension>();
  if (opts.routes) extensions.set('health_check', opts.routes);
  if (opts.k8s) extensions.set('k8s_metadata', opts.k8s);
  const logs: LogLine[] = [];
  const settings = {
    ...testSettings('exporter', 'devzero', {
      board,
      extensions,
      configDir: opts.configDir,
      signals: opts.dns ? ['flows', 'dns'] : ['flows'],
    }),
    logger: captureLogger(logs),
  };
  // Components are `starting` from registration; the framework sets `ok` after start.
  for (const state of board.all()) board.set(state, 'ok');
  // With an endpoint, a token (without one the exporter is local only).
  const parsed = devzeroExporterConfig.parse({
    flush_interval: '1h',
    heartbeat_interval: '1h',
    ...(config.endpoint ? { token: 'tok' } : {}),
    ...config,
  });
  const exporter = (await devzeroExporterFactory.create(settings, parsed)) as DevzeroExporter;
  const m: Made = { exporter, logs, board, settings, stop: () => exporter.shutdown() };
  live.push(m);
  return m;
}

const waitUntil = async (cond: () => boolean, ms = 10_000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('devzero config', () => {
  const issues = (c: Record<string, unknown>) =>
    devzeroExporterConfig.safeParse(c).error?.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
  const targetOf = (c: Record<string, unknown>) => dakrTarget(devzeroExporterConfig.parse(c));

  it('parses {} to local-only defaults', () => {
    expect(devzeroExporterConfig.parse({})).toEqual({
      endpoint: '',
      tls: { insecure: false, insecure_skip_verify: false },
      token: '',
      cluster_id: '',
      node_name: '',
      client_version: '0.1.6',
      heartbeat_components: 'zxporter',
      flush_interval: 60_000,
      heartbeat_interval: 60_000,
      timeout: 120_000,
      compression: 'gzip',
      headers: {},
      sending_queue: { enabled: true, queue_size: 100_000 },
      retry_on_failure: {
        enabled: true,
        initial_interval: 5000,
        max_interval: 30_000,
        max_elapsed_time: 0,
        multiplier: 1.5,
        randomization_factor: 0.5,
      },
      max_items_per_interval: 50_000,
      max_items_per_request: 10_000,
      ip2domain_max_entries: 10_000,
    });
  });

  it("takes zxporter-netmon's DAKR_URL (the scheme decides TLS) and Collector-style host:port (tls decides)", () => {
    expect(targetOf({ endpoint: 'https://dakr.devzero.io' })).toEqual({
      address: 'dakr.devzero.io:443',
      tls: true,
    });
    expect(targetOf({ endpoint: 'http://127.0.0.1:9090/' })).toEqual({
      address: '127.0.0.1:9090',
      tls: false,
    });
    expect(targetOf({ endpoint: 'http://[::1]:9090' })).toEqual({ address: '[::1]:9090', tls: false });
    expect(targetOf({ endpoint: 'dakr.devzero.io:443' })).toEqual({
      address: 'dakr.devzero.io:443',
      tls: true,
    });
    expect(targetOf({ endpoint: '[fd00::7]:9090', tls: { insecure: true } })).toEqual({
      address: '[fd00::7]:9090',
      tls: false,
    });
    expect(targetOf({ endpoint: 'https://dakr:8443', tls: { insecure: true } })).toEqual({
      address: 'dakr:8443',
      tls: true,
    });
  });

  it('rejects bad endpoints and old keys, naming the key', () => {
    expect(issues({ endpoint: 'dakr.devzero.io' })).toEqual([
      'endpoint: "dakr.devzero.io": the port is missing; expected host:port, e.g. dakr.devzero.io:443 or https://dakr.devzero.io',
    ]);
    expect(issues({ endpoint: 'grpc://dakr:1' })?.[0]).toMatch(
      /^endpoint: .*must be http:\/\/ or https:\/\//,
    );
    expect(issues({ endpoint: 'https://dakr.devzero.io/api' })?.[0]).toMatch(
      /^endpoint: .*cannot have a path/,
    );
    expect(issues({ endpoint: 'http://dakr:9090', tls: { ca_file: 'ca.pem' } })).toEqual([
      'endpoint: "http://dakr:9090": http:// means plaintext gRPC, so tls::ca_file would be ignored; use https:// (or dakr:9090 with tls) for TLS',
    ]);
    expect(issues({ headers: { 'x-client': 'me' } })).toEqual([
      'headers::x-client: "x-client" is set by the exporter (token, client_version and NETMON_GIT_SHA set them, as zxporter-netmon sends them)',
    ]);
    expect(issues({ retry_on_failure: { initial_interval: '5s', max_interval: '1s' } })).toEqual([
      'retry_on_failure::max_interval: max_interval must not be shorter than initial_interval',
    ]);
    expect(issues({ client_version: 'v0.1.7' })).toEqual(['client_version: a version x.y.z, e.g. 0.1.6']);
    expect(issues({ heartbeat_components: 'some' })).toHaveLength(1);
    expect(issues({ compression: 'zstd' })).toHaveLength(1);
    // Renamed, not aliased.
    expect(issues({ queue_size: 1000 })).toHaveLength(1);
    expect(issues({ state_dir: '/var/lib/netmon' })).toHaveLength(1);
    expect(issues({ retry: { initial_interval: '1s' } })).toHaveLength(1);
  });

  it('wants sending_queue::queue_size to hold one whole interval; directory needs the queue', () => {
    expect(issues({ sending_queue: { queue_size: 49_999 } })).toEqual([
      'sending_queue::queue_size: queue_size (49999) must hold one whole interval: at least max_items_per_interval (50000 flows and lookups); a smaller queue would drop data with a healthy control plane',
    ]);
    expect(issues({ sending_queue: { queue_size: 1000 }, max_items_per_interval: 1000 })).toBeUndefined();
    expect(issues({ sending_queue: { enabled: false, queue_size: 1 } })).toBeUndefined();
    expect(issues({ sending_queue: { enabled: false, directory: '/var/lib/netmon' } })).toEqual([
      'sending_queue::directory: directory saves the queue, and sending_queue::enabled is false: set enabled: true, or remove directory',
    ]);
  });

  it('names the node from node_name, else NODE_NAME', async () => {
    expect((await make({ node_name: 'n-1' })).exporter.nodeName).toBe('n-1');
  });
});

describe('devzero interval', () => {
  it('sums per (src IP, dst IP, dst port, protocol) and takes pods from the attributes', () => {
    const interval = new Interval(T0, 1000);
    const pods = {
      'src.k8s.pod.name': 'web-1',
      'src.k8s.namespace.name': 'shop',
      'dst.k8s.pod.name': 'db-0',
      'dst.k8s.namespace.name': 'data',
    };
    interval.addFlows(
      FlowBatch.from([
        flow({ srcPort: 40001, attributes: pods }),
        flow({ srcPort: 40002, txBytes: 1, rxBytes: 2, txPackets: 3, rxPackets: 4, timeEnd: T0 + 20_000 }),
        flow({ dstPort: 443 }),
        flow({ protocol: 17 }),
        flow({ dstIp: '10.0.2.20' }),
        flow({ srcIp: '::ffff:10.0.1.34', dstIp: '::ffff:10.0.2.19', family: 6 }),
        flow({ txBytes: 0, rxBytes: 0, txPackets: 0, rxPackets: 0, dstPort: 9 }),
      ]),
    );
    interval.addFlows(FlowBatch.from([flow({ srcPort: 50000 })]));
    expect([...interval.entries()].map((e) => [e.srcIp, e.dstIp, e.dstPort, e.protocol])).toEqual([
      ['10.0.1.34', '10.0.2.19', 8080, 6],
      ['10.0.1.34', '10.0.2.19', 443, 6],
      ['10.0.1.34', '10.0.2.19', 8080, 17],
      ['10.0.1.34', '10.0.2.20', 8080, 6],
      ['::ffff:10.0.1.34', '::ffff:10.0.2.19', 8080, 6],
    ]);
    expect(interval.entry(0)).toEqual({
      srcIp: '10.0.1.34',
      dstIp: '10.0.2.19',
      protocol: 6,
      dstPort: 8080,
      srcPod: 'web-1',
      srcNamespace: 'shop',
      dstPod: 'db-0',
      dstNamespace: 'data',
      txBytes: 2001,
      rxBytes: 40002,
      txPackets: 23,
      rxPackets: 44,
      time: T0 + 20_000,
    });
  });

  it('keeps a namespace only with its pod', () => {
    const interval = new Interval(T0, 1000);
    interval.addFlows(
      FlowBatch.from([
        flow({ attributes: { 'dst.k8s.namespace.name': 'shop', 'dst.k8s.service.name': 'x' } }),
      ]),
    );
    expect(interval.entry(0)).toMatchObject({ dstPod: '', dstNamespace: '' });
  });

  it('sums like a map of keys would, over many keys, both families and every port', () => {
    const interval = new Interval(T0, 100_000);
    const expected = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      const rows: FlowInit[] = [];
      for (let k = 0; k < 5000; k++) {
        const v6 = k % 7 === 0;
        const row = flow({
          family: v6 ? 6 : 4,
          srcIp: v6 ? `2001:db8::${(k % 300).toString(16)}` : `10.${k % 3}.0.${k % 250}`,
          dstIp: v6 ? `2600:1f18::${(k >> 3).toString(16)}` : `52.${(k >> 8) & 255}.${k & 255}.9`,
          dstPort: (k * 7919) % 65536,
          protocol: k % 5 === 0 ? 17 : 6,
          txBytes: k + round + 1,
        });
        rows.push(row);
      }
      const batch = FlowBatch.from(rows);
      for (let i = 0; i < batch.length; i++) {
        const key = `${batch.srcIp(i)}|${batch.dstIp(i)}|${batch.dstPort[i]}|${batch.protocol[i]}`;
        expected.set(key, (expected.get(key) ?? 0) + batch.txBytes[i]);
      }
      interval.addFlows(batch);
    }
    const got = new Map<string, number>();
    for (const e of interval.entries())
      got.set(`${e.srcIp}|${e.dstIp}|${e.dstPort}|${e.protocol}`, e.txBytes);
    expect(interval.flows.size).toBe(expected.size);
    expect(got).toEqual(expected);
  });

  it('holds at most max_items flows and lookups: a new key past it stops the batch, known keys still add', () => {
    const interval = new Interval(T0, 3);
    const batch = FlowBatch.from([
      flow({ dstPort: 1 }),
      flow({ dstPort: 2 }),
      flow({ dstPort: 1, txBytes: 5 }),
      flow({ dstPort: 3 }),
      flow({ dstPort: 4 }),
      flow({ dstPort: 2, txBytes: 7 }),
    ]);
    expect(interval.addFlows(batch)).toBe(4);
    expect(interval.items).toBe(3);
    expect(interval.entry(0).txBytes).toBe(1005);
    const next = new Interval(T0, 3);
    expect(next.addFlows(batch, 4)).toBe(6);
    expect([...next.entries()].map((e) => [e.dstPort, e.txBytes])).toEqual([
      [4, 1000],
      [2, 7],
    ]);
    // Lookups count too.
    next.addDns(dnsSample(), new Ip2Domain(10), T0);
    expect(next.addDns(dnsSample(), new Ip2Domain(10), T0)).toBe(0);
  });

  it('keeps only lookups that resolved an address (as zxporter)', () => {
    const interval = new Interval(T0, 100);
    const ip2domain = new Ip2Domain(10);
    interval.addDns(
      DnsBatch.from([
        { time: T0, clientIp: '10.0.1.34', question: 'nx.example', answers: [] },
        {
          time: T0,
          clientIp: '10.0.1.34',
          question: 'alias.example',
          answers: [{ name: 'alias.example', type: DnsType.CNAME, ttl: 30, target: 'x.example' }],
        },
        {
          time: T0,
          clientIp: '10.0.1.34',
          question: 'v6.example',
          answers: [{ name: 'v6.example', type: DnsType.AAAA, ttl: 30, ip: '2600::1' }],
        },
      ]),
      ip2domain,
      T0,
    );
    expect(interval.lookups.map((l) => [l.domain, l.resolvedIps])).toEqual([['v6.example', ['2600::1']]]);
    expect(ip2domain.size).toBe(1);
  });

  it('keeps zxporter’s lookup as is from batches with the tracer’s columns: the question as asked, A and AAAA answers, each address named by its record’s owner', () => {
    const interval = new Interval(T0, 100);
    const ip2domain = new Ip2Domain(10);
    interval.addDns(
      DnsBatch.from([
        {
          time: T0 + 2000,
          clientIp: '10.0.1.34',
          clientPort: 40111,
          serverIp: '10.96.0.10',
          protocol: 17,
          question: 'Api.Stripe.com',
          questionType: DnsType.A,
          rcode: DnsRcode.NOERROR,
          latencyMs: 4.5,
          cgroupId: 4242,
          canonical: 'edge.stripe.com',
          answers: [
            { name: 'Api.Stripe.com', type: DnsType.CNAME, ttl: 30, target: 'edge.stripe.com' },
            { name: 'edge.stripe.com', type: DnsType.A, ttl: 30, ip: '52.1.2.3' },
            { name: 'edge.stripe.com', type: DnsType.AAAA, ttl: 30, ip: '2600:1f18::5' },
          ],
        },
        // NXDOMAIN resolves nothing: not sent, as zxporter.
        {
          time: T0 + 2000,
          clientIp: '10.0.1.34',
          question: 'nope.example',
          rcode: DnsRcode.NXDOMAIN,
          latencyMs: 1,
          answers: [],
        },
      ]),
      ip2domain,
      T0,
    );
    expect(interval.lookups).toEqual([
      {
        clientIp: '10.0.1.34',
        domain: 'Api.Stripe.com',
        resolvedIps: ['52.1.2.3', '2600:1f18::5'],
        time: T0 + 2000,
      },
    ]);
    // The owner of the address records: the end of the chain, not the question.
    expect(ip2domain.snapshot(T0)).toEqual({
      '52.1.2.3': 'edge.stripe.com',
      '2600:1f18::5': 'edge.stripe.com',
    });
  });

  it('names each address in ip2domain as zxporter: by the owner of its own record, the end of a CNAME chain or the question as asked; domain stays the question', () => {
    const interval = new Interval(T0, 100);
    const ip2domain = new Ip2Domain(10);
    const lookup = (question: string, answers: DnsAnswerInit[], canonical?: string): DnsLookupInit => ({
      time: T0,
      clientIp: '10.0.1.34',
      question,
      answers,
      ...(canonical ? { canonical } : {}),
    });
    interval.addDns(
      DnsBatch.from([
        // A chain of two CNAMEs: the address is the last name's.
        lookup(
          'deep.shop.example',
          [
            { name: 'deep.shop.example', type: DnsType.CNAME, ttl: 30, target: 'alias.shop.example' },
            { name: 'alias.shop.example', type: DnsType.CNAME, ttl: 60, target: 'www.shop.example' },
            { name: 'www.shop.example', type: DnsType.A, ttl: 120, ip: '198.51.100.1' },
          ],
          'www.shop.example',
        ),
        // No CNAME: the record's owner is the question, its spelling kept.
        lookup('Plain.Example', [{ name: 'Plain.Example', type: DnsType.A, ttl: 30, ip: '198.51.100.2' }]),
        // An address record off the chain: zxporter takes its owner, whatever the chain says.
        lookup(
          'x.example',
          [
            { name: 'x.example', type: DnsType.CNAME, ttl: 30, target: 'y.example' },
            { name: 'z.example', type: DnsType.AAAA, ttl: 30, ip: '2001:db8::3' },
          ],
          'y.example',
        ),
        // Built without owner names (not by the tracer): the chain's end, else the question.
        lookup('q.example', [{ name: '', type: DnsType.A, ttl: 30, ip: '198.51.100.4' }], 'c.example'),
        lookup('r.example', [{ name: '', type: DnsType.A, ttl: 30, ip: '198.51.100.5' }]),
      ]),
      ip2domain,
      T0,
    );
    expect(interval.lookups.map((l) => l.domain)).toEqual([
      'deep.shop.example',
      'Plain.Example',
      'x.example',
      'q.example',
      'r.example',
    ]);
    expect(ip2domain.snapshot(T0)).toEqual({
      '198.51.100.1': 'www.shop.example',
      '198.51.100.2': 'Plain.Example',
      '2001:db8::3': 'z.example',
      '198.51.100.4': 'c.example',
      '198.51.100.5': 'r.example',
    });
  });

  it('finds a lookup’s client pod by the pod UID of its cgroup first, then by its address, then by the interval’s flows', () => {
    const interval = new Interval(T0, 100);
    const answer = [{ name: 'a.example', type: DnsType.A, ttl: 30, ip: '52.0.0.1' }];
    const asked: string[] = [];
    const pods: LookupPods = {
      byPodUid: (uid) => {
        asked.push(uid);
        return uid === 'uid-agent' ? { name: 'agent-x', namespace: 'monitoring' } : undefined;
      },
      // 10.0.1.5 is web-1's; 10.0.0.7, the node's, is no pod's.
      byAddress: (addr, off) => (addr[off + 15] === 5 ? { name: 'web-1', namespace: 'shop' } : undefined),
    };
    const lookup = (clientIp: string, podUid?: string) => ({
      time: T0,
      clientIp,
      question: 'a.example',
      answers: answer,
      ...(podUid ? { podUid } : {}),
    });
    interval.addDns(
      DnsBatch.from([
        lookup('10.0.0.7', 'uid-agent'),
        lookup('10.0.0.7', 'uid-agent'),
        lookup('10.0.1.5', 'uid-gone'),
        lookup('10.0.1.5'),
        lookup('10.0.0.7'),
        lookup('10.0.1.34'),
      ]),
      new Ip2Domain(10),
      T0,
      0,
      pods,
    );
    expect(asked).toEqual(['uid-agent', 'uid-gone']);
    // A flow of the interval names 10.0.1.34's pod.
    interval.addFlows(
      FlowBatch.from([
        flow({ attributes: { 'src.k8s.pod.name': 'cart-2', 'src.k8s.namespace.name': 'shop' } }),
      ]),
    );
    const { lookups } = intervalItems(interval);
    expect(lookups.map((l) => [l.client_ip, l.src_pod_name, l.src_pod_namespace])).toEqual([
      ['10.0.0.7', 'agent-x', 'monitoring'],
      ['10.0.0.7', 'agent-x', 'monitoring'],
      ['10.0.1.5', 'web-1', 'shop'],
      ['10.0.1.5', 'web-1', 'shop'],
      ['10.0.0.7', '', ''],
      ['10.0.1.34', 'cart-2', 'shop'],
    ]);
  });

  it('learns A and AAAA answers in ip2domain for their TTL, at least until their interval is flushed', () => {
    const ip2domain = new Ip2Domain(100);
    const interval = new Interval(T0, 1000);
    interval.addDns(dnsSample(), ip2domain, 1000);
    expect(interval.lookups).toEqual([
      {
        clientIp: '10.0.1.34',
        domain: 'api.stripe.com',
        resolvedIps: ['52.1.2.3', '2600:1f18::5'],
        time: T0 + 1500,
      },
    ]);
    // Expired (TTL 30 s) but its interval not flushed yet: still there.
    expect(ip2domain.snapshot(1000 + 60_000)).toEqual({
      '52.1.2.3': 'edge.stripe.com',
      '2600:1f18::5': 'edge.stripe.com',
    });
    ip2domain.nextInterval(1000 + 60_000);
    expect(ip2domain.snapshot(1000 + 60_000)).toEqual({});
    expect(ip2domain.size).toBe(0);
  });

  it('bounds ip2domain: the entry learnt longest ago makes room', () => {
    const ip2domain = new Ip2Domain(2);
    ip2domain.learn('1.1.1.1', 'a', 60, 0);
    ip2domain.learn('2.2.2.2', 'b', 60, 0);
    ip2domain.learn('1.1.1.1', 'a2', 60, 0);
    ip2domain.learn('3.3.3.3', 'c', 60, 0);
    expect(ip2domain.snapshot(0)).toEqual({ '1.1.1.1': 'a2', '3.3.3.3': 'c' });
    expect(ip2domain.evicted).toBe(1);
  });
});

describe('devzero requests', () => {
  const fill = (n: number, podName = 'web-1') => {
    const interval = new Interval(T0, 1_000_000);
    interval.addFlows(
      FlowBatch.from(
        Array.from({ length: n }, (_, i) =>
          flow({
            dstIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
            attributes: { 'src.k8s.pod.name': podName },
          }),
        ),
      ),
    );
    return interval;
  };
  const opts = { nodeName: 'n', now: T0 };

  it('splits an interval at max_items_per_request, flows first, then lookups', () => {
    const interval = fill(25);
    interval.addDns(dnsSample(), new Ip2Domain(10), T0);
    const payloads = buildPayloads(interval, new Ip2Domain(10), { ...opts, maxItemsPerRequest: 10 });
    expect(payloads.map((p) => [p.items.length, p.dns_lookups.length])).toEqual([
      [10, 0],
      [10, 0],
      [5, 1],
    ]);
    expect(
      buildPayloads(new Interval(T0, 1000), new Ip2Domain(1), { ...opts, maxItemsPerRequest: 10 }),
    ).toEqual([]);
  });

  it('keeps every request under the byte budget, and the budget under 4 MiB on the wire', async () => {
    const interval = fill(60_000, 'x'.repeat(63));
    const payloads = buildPayloads(interval, new Ip2Domain(10), { ...opts, maxItemsPerRequest: 100_000 });
    expect(payloads.length).toBeGreaterThan(1);
    expect(payloads.reduce((n, p) => n + p.items.length, 0)).toBe(60_000);
    const { dakrMethods } = await import('./proto.js');
    const sizes = payloads.map(
      (p) => dakrMethods().sendTraffic.requestSerialize(toRequest(p, {}, '0.1.0', 'abc')).length,
    );
    for (const bytes of sizes) expect(bytes).toBeLessThanOrEqual(ITEM_BUDGET_BYTES);
    // Full requests use most of the budget: the estimate errs high, but not by much.
    for (const bytes of sizes.slice(0, -1)) expect(bytes).toBeGreaterThan(ITEM_BUDGET_BYTES * 0.6);
  });

  it('bounds ip2domain per request: its own names, then the newest entries that fit the budget', async () => {
    // 50,000 cache entries with long names: the whole cache would be about 4 MB in every request.
    const ip2domain = new Ip2Domain(50_000);
    for (let i = 0; i < 50_000; i++) {
      ip2domain.learn(
        `52.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        `host-${i}.${'x'.repeat(60)}.example.com`,
        300,
        T0,
      );
    }
    // Learnt first (the oldest entry), and named in the interval's flows.
    ip2domain.learn('10.0.0.1', 'db.internal', 300, T0 - 1);
    const interval = fill(2);
    const [p] = buildPayloads(interval, ip2domain, { ...opts, maxItemsPerRequest: 10 });
    expect(p.domains).toEqual({ '10.0.0.1': 'db.internal' });
    const room = Math.min(RECENT_DOMAINS_BYTES, REQUEST_BUDGET_BYTES - payloadBytes(p));
    const recent = ip2domain.recent(T0, room, domainBytes, p.domains);
    const request = toRequest(p, recent, '0.1.0', '');
    const { dakrMethods } = await import('./proto.js');
    const bytes = dakrMethods().sendTraffic.requestSerialize(request).length;
    expect(bytes).toBeLessThanOrEqual(RECENT_DOMAINS_BYTES + 4096);
    expect(request.ip2domain['10.0.0.1']).toBe('db.internal');
    // The newest entries, newest first, as many as fit.
    const n = Object.keys(recent).length;
    expect(n).toBeGreaterThan(2000);
    expect(n).toBeLessThan(50_000);
    expect(recent['52.0.195.79']).toBe(`host-49999.${'x'.repeat(60)}.example.com`);
    expect(recent['52.0.0.0']).toBeUndefined();

    // A full request leaves room for fewer, never past the budget.
    const big = fill(60_000, 'x'.repeat(63));
    const fullIp2domain = new Ip2Domain(50_000);
    for (let i = 0; i < 50_000; i++)
      fullIp2domain.learn(
        `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        `h${i}.${'y'.repeat(40)}.example`,
        300,
        T0,
      );
    const payloads = buildPayloads(big, fullIp2domain, { ...opts, maxItemsPerRequest: 100_000 });
    for (const q of payloads) {
      const left = Math.min(RECENT_DOMAINS_BYTES, REQUEST_BUDGET_BYTES - payloadBytes(q));
      const req = toRequest(q, fullIp2domain.recent(T0, left, domainBytes, q.domains), '0.1.0', '');
      expect(dakrMethods().sendTraffic.requestSerialize(req).length).toBeLessThanOrEqual(
        REQUEST_BUDGET_BYTES,
      );
    }
  });

  it('encodes as Go does: proto3 fields holding their default are left out, `optional` ones kept', async () => {
    const { dakrMethods } = await import('./proto.js');
    const { Writer } = protobuf;
    const len = (field: number) => (field << 3) | 2;
    const varint = (field: number) => field << 3;
    const request = {
      cluster_id: '',
      team_id: '',
      node_name: 'n',
      items: [
        {
          src_ip: '10.0.0.1',
          dst_ip: '10.0.0.2',
          src_pod_name: '',
          src_pod_namespace: '',
          protocol: 6,
          dst_port: 0,
          tx_bytes: 0,
          rx_bytes: 5,
          tx_packets: 0,
          rx_packets: 1,
          timestamp: { seconds: 1_767_225_600, nanos: 0 },
        },
      ],
      dns_lookups: [],
      ip2domain: { '10.0.0.2': '' },
      operator_version: '0.1.6',
      operator_commit: '',
    };
    // Hand-built, field by field, as protobuf-go marshals it: no cluster_id, team_id, pod names, dst_port,
    // tx counters or nanos; a map entry with both key and (empty) value; the optional commit present.
    const timestamp = Writer.create().uint32(varint(1)).int64(1_767_225_600).finish();
    const item = Writer.create()
      .uint32(len(1))
      .string('10.0.0.1')
      .uint32(len(2))
      .string('10.0.0.2')
      .uint32(varint(5))
      .int32(6)
      .uint32(varint(8))
      .int64(5)
      .uint32(varint(10))
      .int64(1)
      .uint32(len(11))
      .bytes(timestamp)
      .finish();
    const entry = Writer.create().uint32(len(1)).string('10.0.0.2').uint32(len(2)).string('').finish();
    const expected = Writer.create()
      .uint32(len(3))
      .string('n')
      .uint32(len(4))
      .bytes(item)
      .uint32(len(6))
      .bytes(entry)
      .uint32(len(7))
      .string('0.1.6')
      .uint32(len(8))
      .string('')
      .finish();
    expect(dakrMethods().sendTraffic.requestSerialize(request).toString('hex')).toBe(
      Buffer.from(expected).toString('hex'),
    );

    // The heartbeat: UNSPECIFIED statuses, an empty message and commit, a zero timestamp are left out.
    const health = dakrMethods().reportHealth.requestSerialize({
      cluster_id: 'unknown',
      operator_type: 5,
      version: '0.1.6',
      overall_status: 0,
      components: [{ name: 'monitor', status: 0, message: '', metadata: {} }],
      uptime_since: { seconds: 0, nanos: 0 },
      commit: '',
    });
    const component = Writer.create().uint32(len(1)).string('monitor').finish();
    const expectedHealth = Writer.create()
      .uint32(len(1))
      .string('unknown')
      .uint32(varint(2))
      .int32(5)
      .uint32(len(3))
      .string('0.1.6')
      .uint32(len(5))
      .bytes(component)
      .uint32(len(6))
      .bytes(new Uint8Array(0))
      .finish();
    expect(health.toString('hex')).toBe(Buffer.from(expectedHealth).toString('hex'));
  });

  it("names each request's addresses from ip2domain as of the flush, whatever the cache holds later", () => {
    const ip2domain = new Ip2Domain(10);
    ip2domain.learn('10.0.0.1', 'db.internal', 1, T0);
    const interval = fill(2);
    const [p] = buildPayloads(interval, ip2domain, { ...opts, maxItemsPerRequest: 10 });
    expect(p.domains).toEqual({ '10.0.0.1': 'db.internal' });
    const request = toRequest(p, { '9.9.9.9': 'dns.quad9.net', '10.0.0.1': 'stale' }, '0.1.0', '');
    expect(request.ip2domain).toEqual({ '9.9.9.9': 'dns.quad9.net', '10.0.0.1': 'db.internal' });
    expect(request).toMatchObject({
      cluster_id: '',
      team_id: '',
      node_name: 'n',
      operator_version: '0.1.0',
      operator_commit: '',
    });
  });
});

describe('devzero GET /metrics JSON', () => {
  it("is zxporter's MetricsResponse, key for key, and a peek that does not reset", async () => {
    const routes = new Routes();
    const m = await make({ node_name: 'node-a' }, { routes, dns: true });
    await m.exporter.start();
    expect(routes.get('/metrics').body).toBe('{"node_name":"node-a","items":[],"dns_lookups":[]}\n');
    await m.exporter.export(
      FlowBatch.from([
        flow({
          timeEnd: T0 + 10_500,
          attributes: { 'src.k8s.pod.name': 'web-1', 'src.k8s.namespace.name': 'shop' },
        }),
        flow({ dstIp: '52.1.2.3', dstPort: 443, timeEnd: T0 + 10_000 }),
      ]),
    );
    await m.exporter.export(dnsSample());
    const res = routes.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const ip2domain = '"ip2domain":{"52.1.2.3":"edge.stripe.com","2600:1f18::5":"edge.stripe.com"}';
    expect(res.body).toBe(
      '{"node_name":"node-a","items":[' +
        '{"src_ip":"10.0.1.34","dst_ip":"10.0.2.19","src_pod_name":"web-1","src_pod_namespace":"shop","protocol":6,"dst_port":8080,"tx_bytes":1000,"rx_bytes":20000,"tx_packets":10,"rx_packets":20,"timestamp":"2026-01-01T00:00:10.5Z"},' +
        '{"src_ip":"10.0.1.34","dst_ip":"52.1.2.3","protocol":6,"dst_port":443,"tx_bytes":1000,"rx_bytes":20000,"tx_packets":10,"rx_packets":20,"timestamp":"2026-01-01T00:00:10Z"}],' +
        '"dns_lookups":[{"client_ip":"10.0.1.34","domain":"api.stripe.com","resolved_ips":["52.1.2.3","2600:1f18::5"],"timestamp":"2026-01-01T00:00:01.5Z","src_pod_name":"web-1","src_pod_namespace":"shop"}],' +
        `${ip2domain}}\n`,
    );
    expect(routes.get('/metrics').body).toBe(res.body);
    m.exporter.flush();
    expect(routes.get('/metrics').body).toBe(
      `{"node_name":"node-a","items":[],"dns_lookups":[],${ip2domain}}\n`,
    );
  });

  it('names a hostNetwork pod’s lookups by its UID in the k8s_metadata store, in /metrics and on the wire', async () => {
    const store = new MetadataStore();
    store.upsertNode({ name: 'n1', ips: ['10.0.0.7'], podCidrs: [] });
    store.upsertPod({
      uid: 'uid-agent',
      namespace: 'monitoring',
      name: 'agent-x',
      nodeName: 'n1',
      phase: 'Running',
      hostNetwork: true,
      ips: ['10.0.0.7'],
      workloadKind: 'DaemonSet',
      workloadName: 'agent',
      labels: {},
    });
    const k8s = { store, standalone: false, synced: () => true } as unknown as Extension;
    const routes = new Routes();
    const m = await make({ endpoint: standIn.url, node_name: 'n1' }, { dns: true, routes, k8s });
    await m.exporter.start();
    const answers = [{ name: 'a.example', type: DnsType.A, ttl: 30, ip: '52.0.0.1' }];
    await m.exporter.export(
      DnsBatch.from([
        { time: T0, clientIp: '10.0.0.7', question: 'a.example', podUid: 'uid-agent', answers },
        // The node's own lookup (no pod UID): its address is no pod's.
        { time: T0, clientIp: '10.0.0.7', question: 'a.example', answers },
      ]),
    );
    expect(JSON.parse(routes.get('/metrics').body).dns_lookups).toEqual([
      {
        client_ip: '10.0.0.7',
        domain: 'a.example',
        resolved_ips: ['52.0.0.1'],
        timestamp: '2026-01-01T00:00:00Z',
        src_pod_name: 'agent-x',
        src_pod_namespace: 'monitoring',
      },
      {
        client_ip: '10.0.0.7',
        domain: 'a.example',
        resolved_ips: ['52.0.0.1'],
        timestamp: '2026-01-01T00:00:00Z',
      },
    ]);
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    expect(
      standIn.traffic[0].request.dns_lookups.map((l) => [l.client_ip, l.src_pod_name, l.src_pod_namespace]),
    ).toEqual([
      ['10.0.0.7', 'agent-x', 'monitoring'],
      ['10.0.0.7', '', ''],
    ]);
  });

  it('says dns_lookups: null without a dns pipeline, and leaves the route at shutdown', async () => {
    const routes = new Routes();
    const m = await make({ node_name: 'n' }, { routes });
    await m.exporter.start();
    expect(routes.get('/metrics').body).toBe('{"node_name":"n","items":[],"dns_lookups":null}\n');
    await m.stop();
    expect(routes.routes.size).toBe(0);
  });

  it('refuses to start when /metrics is already served', async () => {
    const routes = new Routes();
    routes.route('/metrics', () => undefined, 'exporter devzero/a');
    const m = await make({}, { routes });
    await expect(m.exporter.start()).rejects.toThrow(
      'cannot serve GET /metrics on the health_check port: /metrics is already served by exporter devzero/a',
    );
  });

  it('formats times as Go does', () => {
    expect(goTime(T0)).toBe('2026-01-01T00:00:00Z');
    expect(goTime(T0 + 120)).toBe('2026-01-01T00:00:00.12Z');
    expect(goTime(T0 + 1)).toBe('2026-01-01T00:00:00.001Z');
  });
});

describe('devzero exporter over gRPC (stand-in)', () => {
  it('refuses cumulative counters, pointing at the delta processor', async () => {
    const m = await make({});
    await m.exporter.start();
    const batch = FlowBatch.from([flow()], 'cumulative');
    batch.origin = 'conntrack';
    await expect(m.exporter.export(batch)).rejects.toThrow(
      'devzero exporter devzero received cumulative counters from conntrack: it sums per-interval deltas, so put the delta processor before it (processors: [delta, …])',
    );
  });

  it("sends one request per interval with zxporter's headers and fields; nothing when nothing changed", async () => {
    const m = await make({ endpoint: standIn.url, token: 'tok-123', node_name: 'node-a', cluster_id: 'c-1' });
    await m.exporter.start();
    await standIn.waitFor(() => standIn.health.length === 1);
    m.exporter.flush();
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 0, rxBytes: 0, txPackets: 0, rxPackets: 0 })]));
    m.exporter.flush();
    // flush() queues synchronously: nothing queued now is nothing ever sent for these two intervals.
    expect(m.exporter.facts()).toMatchObject({
      flushes: { queued: 0, empty: 2 },
      queue: { pending_requests: 0, sent_requests: 0 },
    });

    await m.exporter.export(
      FlowBatch.from([
        flow({ attributes: { 'src.k8s.pod.name': 'web-1', 'src.k8s.namespace.name': 'shop' } }),
      ]),
    );
    m.exporter.flush();
    expect(m.exporter.facts()).toMatchObject({ flushes: { queued: 1, empty: 2 } });
    await standIn.waitFor(() => standIn.traffic.length === 1);
    const [call] = standIn.traffic;
    // zxporter-netmon's newest release, not netmon's own version.
    expect(NETMON_VERSION).not.toBe('0.1.6');
    expect(call.headers).toEqual({
      authorization: 'Bearer tok-123',
      'x-client': 'zxporter/0.1.6',
      'x-operator-type': 'zxporter',
      'x-operator-version': '0.1.6',
      'user-agent': expect.stringMatching(/^grpc-node-js\//),
    });
    expect(call.compressed).toBe(false);
    expect(call.request).toMatchObject({
      cluster_id: '',
      team_id: '',
      node_name: 'node-a',
      operator_version: '0.1.6',
      _operator_version: 'operator_version',
      operator_commit: '',
      _operator_commit: 'operator_commit',
      dns_lookups: [],
      ip2domain: {},
      items: [
        {
          src_ip: '10.0.1.34',
          dst_ip: '10.0.2.19',
          src_pod_name: 'web-1',
          src_pod_namespace: 'shop',
          protocol: 6,
          dst_port: 8080,
          tx_bytes: 1000,
          rx_bytes: 20000,
          tx_packets: 10,
          rx_packets: 20,
          timestamp: { seconds: (T0 + 10_000) / 1000, nanos: 0 },
        },
      ],
    });
    expect(standIn.health[0].request).toMatchObject({
      cluster_id: 'c-1',
      operator_type: 5,
      version: '0.1.6',
    });
  });

  it('reports client_version in the headers, the request and the heartbeat', async () => {
    const m = await make({ endpoint: standIn.url, client_version: '0.2.0' });
    await m.exporter.start();
    await standIn.waitFor(() => standIn.health.length === 1);
    await m.exporter.export(FlowBatch.from([flow()]));
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    for (const call of [standIn.traffic[0], standIn.health[0]]) {
      expect(call.headers).toMatchObject({ 'x-client': 'zxporter/0.2.0', 'x-operator-version': '0.2.0' });
    }
    expect(standIn.traffic[0].request.operator_version).toBe('0.2.0');
    expect(standIn.health[0].request.version).toBe('0.2.0');
    expect(m.exporter.facts()).toMatchObject({ client_version: '0.2.0' });
  });

  it('adds the git sha when known', async () => {
    process.env.NETMON_GIT_SHA = 'abc1234';
    try {
      const m = await make({ endpoint: standIn.url });
      await m.exporter.start();
      await standIn.waitFor(() => standIn.health.length === 1);
      expect(standIn.health[0].headers.authorization).toBe('Bearer tok');
      expect(standIn.health[0].headers['x-operator-git-sha']).toBe('abc1234');
      expect(standIn.health[0].request).toMatchObject({ cluster_id: 'unknown', commit: 'abc1234' });
    } finally {
      delete process.env.NETMON_GIT_SHA;
    }
  });

  it('an endpoint without a token is local only, as zxporter: nothing sent, no heartbeat, a warning', async () => {
    const routes = new Routes();
    const m = await make({ endpoint: standIn.url, token: '', node_name: 'n' }, { routes });
    await m.exporter.start();
    expect(m.logs).toContainEqual({
      level: 'warn',
      msg: 'local only (an endpoint but no token: set token, CLUSTER_TOKEN, to send): nothing is sent; GET /metrics on the health_check port shows the current interval',
      fields: { endpoint: standIn.url, node_name: 'n', metrics_path: '/metrics' },
    });
    await m.exporter.export(FlowBatch.from([flow()]));
    expect(JSON.parse(routes.get('/metrics').body).items).toHaveLength(1);
    m.exporter.flush();
    expect(m.exporter.facts()).toMatchObject({
      mode: 'local_only',
      local_only_reason: 'no token',
      queue: null,
      flushes: { local_only: 1 },
    });
    await m.stop();
    expect(standIn.traffic).toHaveLength(0);
    expect(standIn.health).toHaveLength(0);
    expect(m.board.all()[0].status).toBe('ok');
  });

  it('gzips a message of 1024 bytes or more, never a smaller one', async () => {
    const client = new DakrClient({
      target: { address: `127.0.0.1:${standIn.port}`, tls: false },
      token: '',
      version: '0.1.0',
      commit: '',
      timeoutMs: 5000,
    });
    const { dakrMethods } = await import('./proto.js');
    const sized = (bytes: number) => {
      const base = {
        cluster_id: '',
        team_id: '',
        items: [],
        dns_lookups: [],
        ip2domain: {},
        operator_version: '',
        operator_commit: '',
      };
      for (let n = bytes; n > 0; n--) {
        const req = { ...base, node_name: 'x'.repeat(n) };
        if (dakrMethods().sendTraffic.requestSerialize(req).length === bytes) return req;
      }
      throw new Error(`no request of ${bytes} bytes`);
    };
    try {
      for (const size of [100, 1023, 1024, 200_000]) await client.sendTraffic(sized(size), 5000);
      expect(standIn.traffic.map((c) => [c.request.node_name.length + 0, c.compressed])).toEqual([
        [sized(100).node_name.length, false],
        [sized(1023).node_name.length, false],
        [sized(1024).node_name.length, true],
        [sized(200_000).node_name.length, true],
      ]);
    } finally {
      client.close();
    }
  });

  it('keeps intervals across an outage and delivers each once, in order', async () => {
    const m = await make({
      endpoint: standIn.url,
      retry_on_failure: { initial_interval: '20ms', max_interval: '100ms' },
    });
    await m.exporter.start();
    standIn.failWith = { code: grpcStatus.UNAVAILABLE, details: 'maintenance' };
    for (let i = 1; i <= 3; i++) {
      await m.exporter.export(FlowBatch.from([flow({ txBytes: i })]));
      m.exporter.flush();
    }
    await waitUntil(() => standIn.failed >= 3);
    const state = m.board.all()[0];
    expect(state.status).toBe('recoverable_error');
    expect(state.lastError).toMatch(/UNAVAILABLE: maintenance/);
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 4 })]));

    await standIn.stop();
    await new Promise((r) => setTimeout(r, 200));
    await standIn.restart();
    standIn.failWith = undefined;
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 4);
    expect(standIn.traffic.map((c) => c.request.items[0].tx_bytes)).toEqual([1, 2, 3, 4]);
    await waitUntil(() => state.status === 'ok');
  });

  it('a flush never pushes out its own requests: queue_size = max_items_per_interval, an older one in flight', async () => {
    // The stand-in answers after 150 ms, so the first interval's request is in flight while the next
    // interval (10 items in five requests) is queued: 11 items in a queue of 10, all delivered.
    standIn.delayMs = 150;
    const m = await make({
      endpoint: standIn.url,
      max_items_per_interval: 10,
      sending_queue: { queue_size: 10 },
      max_items_per_request: 2,
    });
    await m.exporter.start();
    await m.exporter.export(FlowBatch.from([flow({ dstPort: 1 })]));
    m.exporter.flush();
    await m.exporter.export(FlowBatch.from(Array.from({ length: 10 }, (_, k) => flow({ dstPort: 100 + k }))));
    m.exporter.flush();
    await standIn.waitFor(() => standIn.totals().items === 11);
    const queue = m.exporter.facts().queue as {
      dropped_items: Record<string, number>;
      pending_items: number;
    };
    expect(queue.dropped_items).toEqual({ queue_full: 0, rejected: 0, retry_exhausted: 0, shutdown: 0 });
    expect(standIn.traffic.map((c) => c.request.items.length)).toEqual([1, 2, 2, 2, 2, 2]);
  });

  it('closes a full interval early (max_items_per_interval): nothing dropped, everything delivered once', async () => {
    const m = await make(
      {
        endpoint: standIn.url,
        max_items_per_interval: 10,
        sending_queue: { queue_size: 40 },
        max_items_per_request: 5,
      },
      { dns: true },
    );
    await m.exporter.start();
    // 25 keys in one batch: two intervals close early (10 + 10), 5 stay for the next flush.
    const rows = Array.from({ length: 25 }, (_, k) => flow({ dstPort: 1000 + k, txBytes: k + 1 }));
    await m.exporter.export(FlowBatch.from(rows));
    expect(m.exporter.facts()).toMatchObject({ early_flushes: 2, interval: { flows: 5, max_items: 10 } });
    // Lookups count too: 5 flows + 5 lookups fill it, the sixth lookup closes it.
    await m.exporter.export(
      DnsBatch.from(
        Array.from({ length: 6 }, (_, k) => ({
          time: T0,
          clientIp: '10.0.1.34',
          question: `h${k}.example`,
          answers: [{ name: `h${k}.example`, type: DnsType.A, ttl: 30, ip: `52.0.0.${k}` }],
        })),
      ),
    );
    expect(m.exporter.facts()).toMatchObject({ early_flushes: 3, interval: { flows: 0, dns_lookups: 1 } });
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.reduce((n, c) => n + c.request.dns_lookups.length, 0) === 6);
    await standIn.waitFor(() => standIn.totals().items === 25);
    expect(standIn.totals().tx_bytes).toBe((25 * 26) / 2);
    const queue = m.exporter.facts().queue as { dropped_items: Record<string, number> };
    expect(queue.dropped_items).toEqual({ queue_full: 0, rejected: 0, retry_exhausted: 0, shutdown: 0 });
  });

  it('drops a request the backend rejects for good and goes on', async () => {
    const m = await make({ endpoint: standIn.url });
    await m.exporter.start();
    await standIn.waitFor(() => standIn.health.length === 1);
    standIn.failWith = { code: grpcStatus.INVALID_ARGUMENT };
    await m.exporter.export(FlowBatch.from([flow()]));
    m.exporter.flush();
    await waitUntil(() => standIn.failed >= 1);
    standIn.failWith = undefined;
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 7 })]));
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    expect(standIn.traffic[0].request.items[0].tx_bytes).toBe(7);
    expect(
      isRetryable({ code: grpcStatus.RESOURCE_EXHAUSTED, details: 'Received message larger than max' }),
    ).toBe(false);
    expect(isRetryable({ code: grpcStatus.RESOURCE_EXHAUSTED, details: 'rate limited' })).toBe(true);
  });

  it('sends flows and DNS of one id in one request', async () => {
    const m = await make({ endpoint: standIn.url }, { dns: true });
    await m.exporter.start();
    await m.exporter.export(dnsSample());
    await m.exporter.export(
      FlowBatch.from([flow({ dstIp: '52.1.2.3', attributes: { 'src.k8s.pod.name': 'web-1' } })]),
    );
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    expect(standIn.traffic[0].request).toMatchObject({
      items: [{ dst_ip: '52.1.2.3', src_pod_name: 'web-1' }],
      dns_lookups: [
        {
          client_ip: '10.0.1.34',
          domain: 'api.stripe.com',
          resolved_ips: ['52.1.2.3', '2600:1f18::5'],
          timestamp: { seconds: (T0 + 1500 - 500) / 1000, nanos: 500_000_000 },
          src_pod_name: 'web-1',
        },
      ],
      ip2domain: { '52.1.2.3': 'edge.stripe.com', '2600:1f18::5': 'edge.stripe.com' },
    });
    // An interval with only lookups is sent too.
    await m.exporter.export(dnsSample());
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 2);
    expect(standIn.traffic[1].request.items).toEqual([]);
  });

  it("heartbeats only zxporter's components by default, rolled up from netmon's (worst wins), with its texts", async () => {
    const m = await make({ endpoint: standIn.url, cluster_id: 'c-9' });
    const r = m.board.register('receiver', 'conntrack', { signal: 'flows' });
    m.board.set(r, 'starting');
    m.board.set(r, 'recoverable_error', new Error('ENOBUFS'));
    r.items.out = 42;
    const p = m.board.register('processor', 'delta', { signal: 'flows', pipeline: 'flows' });
    m.board.set(p, 'starting');
    m.board.set(p, 'ok');
    await m.exporter.start();
    await standIn.waitFor(() => standIn.health.length === 1);
    const hb = standIn.health[0].request;
    expect(hb).toMatchObject({ cluster_id: 'c-9', operator_type: 5, overall_status: 2, commit: '' });
    expect(hb.uptime_since.seconds).toBeGreaterThan(T0 / 1000);
    // No dns receiver: no ebpf_tracer (zxporter without BTF). No k8s_metadata: pod_cache is standalone.
    expect(hb.components).toEqual([
      {
        name: 'monitor',
        status: 2,
        message: 'receiver/conntrack@flows: ENOBUFS',
        metadata: { components: 'receiver/conntrack@flows, processor/delta@flows' },
      },
      {
        name: 'dakr_transport',
        status: 1,
        message: 'initialized',
        metadata: {
          endpoint: standIn.url,
          pending_requests: '0',
          pending_items: '0',
          sent_requests: '0',
          failed_attempts: '0',
        },
      },
      { name: 'pod_cache', status: 1, message: 'standalone mode', metadata: {} },
    ]);
    expect(healthOf('fatal_error')).toBe(3);
    expect(healthOf('stopping')).toBe(0);
    expect(overallHealth([1, 0, 1])).toBe(1);
    expect(overallHealth([])).toBe(0);
    expect(componentName({ kind: 'extension', id: 'health_check' } as never)).toBe('extension/health_check');
  });

  it('heartbeat_components: all adds every netmon component after zxporter’s, never with an empty message', async () => {
    const m = await make({ endpoint: standIn.url, heartbeat_components: 'all' });
    const r = m.board.register('receiver', 'conntrack', { signal: 'flows' });
    m.board.set(r, 'starting');
    m.board.set(r, 'recoverable_error', new Error('ENOBUFS'));
    r.items.out = 42;
    const p = m.board.register('processor', 'delta', { signal: 'flows', pipeline: 'flows' });
    m.board.set(p, 'starting');
    m.board.set(p, 'ok');
    const cost = m.board.register('processor', 'cost', { signal: 'flows', pipeline: 'flows' });
    m.board.set(cost, 'starting');
    m.board.set(cost, 'permanent_error', new Error('no price list'));
    await m.exporter.start();
    await standIn.waitFor(() => standIn.health.length === 1);
    const hb = standIn.health[0].request;
    expect(hb.components.map((c) => c.name)).toEqual([
      'monitor',
      'dakr_transport',
      'pod_cache',
      'exporter/devzero',
      'receiver/conntrack@flows',
      'processor/delta@flows',
      'processor/cost@flows',
    ]);
    expect(hb.components).toContainEqual({
      name: 'receiver/conntrack@flows',
      status: 2,
      message: 'ENOBUFS',
      metadata: {
        status: 'recoverable_error',
        items_in: '0',
        items_out: '42',
        items_dropped: '0',
        items_failed: '0',
      },
    });
    expect(hb.components.find((c) => c.name === 'processor/delta@flows')?.message).toBe('ok');
    // Worst wins: a processor failed for good makes monitor, and the whole report, UNHEALTHY.
    expect(hb.components[0]).toMatchObject({
      status: 3,
      message: 'receiver/conntrack@flows: ENOBUFS; processor/cost@flows: no price list',
    });
    expect(hb.overall_status).toBe(3);
  });

  it("maps netmon's state to zxporter's monitor, dakr_transport, ebpf_tracer and pod_cache; no stale errors", async () => {
    const m = await make({
      endpoint: standIn.url,
      heartbeat_interval: '100ms',
      retry_on_failure: { initial_interval: '1h', max_interval: '1h' },
    });
    const add = (kind: 'receiver' | 'extension' | 'exporter', id: string, signal?: string) => {
      const state = m.board.register(kind, id, signal ? { signal } : {});
      m.board.set(state, 'starting');
      m.board.set(state, 'ok');
      return state;
    };
    add('receiver', 'conntrack', 'flows');
    const dns = add('receiver', 'dns', 'dns');
    // The dns receiver failed once and recovered: its old error is not its message any more.
    m.board.set(dns, 'recoverable_error', new Error('ring buffer lost 3 events'));
    m.board.set(dns, 'ok');
    const k8s = add('extension', 'k8s_metadata');
    m.board.set(k8s, 'recoverable_error', new Error('watch pods: 410 Gone'));
    // Another exporter failing: monitor stands for it, and the worst status wins.
    const prom = add('exporter', 'prometheus', 'flows');
    m.board.set(prom, 'recoverable_error', new Error('scrape cut off'));
    await m.exporter.start();
    await standIn.waitFor(() => standIn.health.length >= 1);
    const first = standIn.health[0].request;
    const byName = (hb: typeof first) => new Map(hb.components.map((c) => [c.name, c]));
    let c = byName(first);
    expect(first.components.map((x) => x.name)).toEqual([
      'monitor',
      'dakr_transport',
      'ebpf_tracer',
      'pod_cache',
    ]);
    expect(c.get('monitor')).toEqual({
      name: 'monitor',
      status: 2,
      message: 'exporter/prometheus@flows: scrape cut off',
      metadata: { components: 'receiver/conntrack@flows, exporter/prometheus@flows' },
    });
    expect(c.get('ebpf_tracer')).toEqual({
      name: 'ebpf_tracer',
      status: 1,
      message: 'initialized',
      metadata: { components: 'receiver/dns@dns' },
    });
    expect(c.get('pod_cache')).toMatchObject({
      status: 2,
      message: 'extension/k8s_metadata: watch pods: 410 Gone',
    });
    expect(c.get('dakr_transport')).toMatchObject({ status: 1, message: 'initialized' });
    expect(first.overall_status).toBe(2);

    // Once an interval was closed, zxporter says "connected".
    m.exporter.flush();
    m.board.set(prom, 'ok');
    m.board.set(k8s, 'ok');
    let seen = standIn.health.length;
    await standIn.waitFor(() => standIn.health.length > seen);
    c = byName(standIn.health[standIn.health.length - 1].request);
    expect(c.get('dakr_transport')).toMatchObject({ status: 1, message: 'connected' });
    expect(c.get('monitor')).toMatchObject({ status: 1, message: 'collecting' });
    expect(c.get('pod_cache')).toMatchObject({ status: 1, message: 'informer synced' });

    // The control plane refuses traffic: dakr_transport is DEGRADED with the error (heartbeats still go).
    standIn.failWith = { code: grpcStatus.UNAVAILABLE, details: 'maintenance' };
    await m.exporter.export(FlowBatch.from([flow()]));
    m.exporter.flush();
    await waitUntil(() => standIn.failed >= 1);
    standIn.failWith = undefined;
    seen = standIn.health.length;
    await standIn.waitFor(() => standIn.health.length > seen);
    c = byName(standIn.health[standIn.health.length - 1].request);
    expect(c.get('dakr_transport')).toMatchObject({
      status: 2,
      message: expect.stringContaining('UNAVAILABLE: maintenance'),
      metadata: { pending_requests: '1', pending_items: '1', failed_attempts: '1' },
    });
    expect(c.get('monitor')).toMatchObject({ status: 1, message: 'collecting' });
  });

  it('pod_cache is "standalone mode" when the k8s_metadata extension runs standalone', async () => {
    const board = new StatusBoard();
    const extensions = new Map<string, Extension>([
      ['k8s_metadata', { standalone: true } as unknown as Extension],
    ]);
    const settings = testSettings('exporter', 'devzero', { board, extensions });
    for (const state of board.all()) board.set(state, 'ok');
    const k8s = board.register('extension', 'k8s_metadata');
    board.set(k8s, 'starting');
    board.set(k8s, 'ok');
    const config = devzeroExporterConfig.parse({ endpoint: standIn.url, token: 't', flush_interval: '1h' });
    const e = (await devzeroExporterFactory.create(settings, config)) as DevzeroExporter;
    live.push({ exporter: e, logs: [], board, settings, stop: () => e.shutdown() });
    await e.start();
    await standIn.waitFor(() => standIn.health.length === 1);
    expect(standIn.health[0].request.components.find((x) => x.name === 'pod_cache')).toEqual({
      name: 'pod_cache',
      status: 1,
      message: 'standalone mode',
      metadata: { components: 'extension/k8s_metadata' },
    });
  });

  it('logs and counts a failed heartbeat, and keeps beating', async () => {
    standIn.failWith = { code: grpcStatus.UNAUTHENTICATED };
    const m = await make({ endpoint: standIn.url, heartbeat_interval: '100ms' });
    await m.exporter.start();
    await waitUntil(() => standIn.failed >= 2);
    standIn.failWith = undefined;
    const facts = () => m.board.all()[0].details?.() as { heartbeat: { failure: number; success: number } };
    // The stand-in records a call before its answer reaches the exporter: wait for the exporter's count.
    await waitUntil(() => facts().heartbeat.success >= 1);
    expect(standIn.health.length).toBeGreaterThanOrEqual(1);
    expect(facts().heartbeat.failure).toBeGreaterThanOrEqual(2);
  });
});

describe('devzero sending_queue::directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-devzero-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps unsent intervals (and the partial one) across a restart and sends each once', async () => {
    await standIn.stop();
    const config = {
      endpoint: standIn.url,
      sending_queue: { directory: 'state' },
      retry_on_failure: { initial_interval: '20ms', max_interval: '50ms' },
    };
    const first = await make(config, { configDir: dir });
    await first.exporter.start();
    await first.exporter.export(FlowBatch.from([flow({ txBytes: 1 })]));
    first.exporter.flush();
    await first.exporter.export(FlowBatch.from([flow({ txBytes: 2 })]));
    await first.stop();
    const file = join(dir, 'state', 'devzero.queue.json');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(saved.pending.map((p: { items: { tx_bytes: number }[] }) => p.items[0].tx_bytes)).toEqual([1, 2]);

    await standIn.restart();
    const second = await make(config, { configDir: dir });
    await second.exporter.start();
    await standIn.waitFor(() => standIn.traffic.length === 2);
    await waitUntil(
      () =>
        second.exporter.facts().queue !== null &&
        (second.exporter.facts().queue as { pending_items: number }).pending_items === 0,
    );
    // The acknowledged requests are gone from the file before anything could read them back.
    await second.stop();
    expect(JSON.parse(await readFile(file, 'utf8')).pending).toEqual([]);
    const third = await make(config, { configDir: dir });
    await third.exporter.start();
    // Nothing restored, nothing queued: nothing can be sent again.
    expect(third.exporter.facts()).toMatchObject({
      restored: { requests: 0, items: 0 },
      queue: { pending_requests: 0, sent_requests: 0 },
    });
    expect(standIn.traffic.map((c) => c.request.items[0].tx_bytes)).toEqual([1, 2]);
    await third.stop();
  });

  it('shutdown is bounded (3 s): a call the control plane holds is cancelled, its request kept', async () => {
    // The control plane takes every call and answers none in time: without a bound, stopping would wait
    // for the 60 s call timeout.
    standIn.delayMs = 8000;
    const m = await make({ endpoint: standIn.url, sending_queue: { directory: dir }, timeout: '60s' });
    await m.exporter.start();
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 9 })]));
    m.exporter.flush();
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await m.stop();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(2900);
    expect(took).toBeLessThan(4500);
    const saved = JSON.parse(await readFile(join(dir, 'devzero.queue.json'), 'utf8'));
    expect(saved.pending.map((p: { items: { tx_bytes: number }[] }) => p.items[0].tx_bytes)).toEqual([9]);
    expect(m.logs.map((l) => l.msg)).toContain(
      'stopping: the backend did not answer within the shutdown deadline; gave up on the call in flight',
    );
  });

  it('sets a state file that cannot be read aside (not overwritten), or, when that fails too, never writes it', async () => {
    // EIO on an existing file: readState renames it *.unreadable, content intact.
    const file = join(dir, 'devzero.queue.json');
    await writeFile(file, '{"version":1,"pending":[],"ip2domain":[]}');
    const eio = async () => {
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    };
    expect(await readState(file, eio)).toEqual({
      problem: `cannot read ${file} (EIO: i/o error, read); set aside as ${file}.unreadable, starting empty`,
    });
    expect(await readFile(`${file}.unreadable`, 'utf8')).toBe('{"version":1,"pending":[],"ip2domain":[]}');
    await rm(`${file}.unreadable`);

    // Through the exporter: a "file" that cannot be read (a directory: EISDIR) is set aside, and the
    // exporter's own state goes to a new file.
    await mkdir(join(file, 'inside'), { recursive: true });
    const m = await make({ endpoint: standIn.url, sending_queue: { directory: dir } });
    await m.exporter.start();
    expect((await stat(join(`${file}.unreadable`, 'inside'))).isDirectory()).toBe(true);
    standIn.failWith = { code: grpcStatus.UNAVAILABLE };
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 3 })]));
    await m.stop();
    expect(JSON.parse(await readFile(file, 'utf8')).pending).toHaveLength(1);
    await rm(file);

    // Neither readable nor movable (the *.unreadable name is taken by a non-empty directory): the
    // exporter does not write the file this run; what it could not send is counted as dropped.
    await writeFile(file, 'precious');
    const blocked = await readState(file, eio);
    expect(blocked.blocked).toBe(true);
    expect(blocked.problem).toMatch(/it is not written this run/);
    expect(await readFile(file, 'utf8')).toBe('precious');
    await rm(file);
    await mkdir(join(file, 'inside'), { recursive: true });
    await mkdir(join(`${file}.unreadable`, 'taken'), { recursive: true });
    const n = await make({ endpoint: standIn.url, sending_queue: { directory: dir } });
    await n.exporter.start();
    await n.exporter.export(FlowBatch.from([flow({ txBytes: 4 })]));
    await n.stop();
    expect((await stat(join(file, 'inside'))).isDirectory()).toBe(true);
    expect(n.exporter.facts().state_file).toMatchObject({ blocked: true, writes: 0, failures: 0 });
    expect((n.exporter.facts().queue as { dropped_items: { shutdown: number } }).dropped_items.shutdown).toBe(
      1,
    );
    expect(n.logs.find((l) => l.level === 'error' && /is not written this run/.test(l.msg))).toBeDefined();
  });

  it('sets a damaged state file aside and starts empty', async () => {
    const file = join(dir, 'devzero.queue.json');
    await writeFile(file, '{"version":1,"pending":[{"items":"nope"}]}');
    const m = await make({ endpoint: standIn.url, sending_queue: { directory: dir } });
    await m.exporter.start();
    expect(JSON.parse(await readFile(`${file}.corrupt`, 'utf8')).version).toBe(1);
    expect((m.exporter.facts().queue as { pending_items: number }).pending_items).toBe(0);
    await m.stop();
  });
});

describe('devzero retry_on_failure and sending_queue', () => {
  type QueueFacts = { dropped_items: Record<string, number>; pending_items: number; failed_attempts: number };
  const queueOf = (m: Made) => m.exporter.facts().queue as QueueFacts;

  it('retry_on_failure::enabled false: a failed send is dropped and counted at once; the next interval goes', async () => {
    const m = await make({ endpoint: standIn.url, retry_on_failure: { enabled: false } });
    await m.exporter.start();
    standIn.failWith = { code: grpcStatus.UNAVAILABLE, details: 'maintenance' };
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 1 }), flow({ dstPort: 9, txBytes: 2 })]));
    m.exporter.flush();
    await waitUntil(() => queueOf(m).dropped_items.retry_exhausted === 2);
    expect(queueOf(m)).toMatchObject({ pending_items: 0, failed_attempts: 1 });
    expect(m.logs.map((l) => l.msg)).toContain(
      'send failed and retry_on_failure is disabled; dropped the data',
    );
    standIn.failWith = undefined;
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 3 })]));
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    expect(standIn.traffic[0].request.items.map((i) => i.tx_bytes)).toEqual([3]);
  });

  it('retry_on_failure::max_elapsed_time: retried until then, dropped and counted; a later interval is delivered', async () => {
    const m = await make({
      endpoint: standIn.url,
      retry_on_failure: {
        initial_interval: '50ms',
        max_interval: '50ms',
        max_elapsed_time: '300ms',
        randomization_factor: 0,
      },
    });
    await m.exporter.start();
    standIn.failWith = { code: grpcStatus.UNAVAILABLE };
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 1 })]));
    const t0 = Date.now();
    m.exporter.flush();
    await waitUntil(() => queueOf(m).dropped_items.retry_exhausted === 1);
    const took = Date.now() - t0;
    // Attempts every 50 ms until the next wait would end past 300 ms: about six attempts.
    expect(took).toBeGreaterThanOrEqual(240);
    expect(took).toBeLessThan(2000);
    expect(queueOf(m).failed_attempts).toBeGreaterThanOrEqual(3);
    expect(queueOf(m).failed_attempts).toBeLessThanOrEqual(7);
    const line = m.logs.find(
      (l) => l.msg === 'send kept failing until retry_on_failure::max_elapsed_time; dropped the data',
    );
    expect(line?.fields).toMatchObject({ dropped_items: 1, max_elapsed_ms: 300 });
    expect(m.board.all()[0].status).toBe('recoverable_error');
    standIn.failWith = undefined;
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 2 })]));
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    expect(standIn.traffic[0].request.items[0].tx_bytes).toBe(2);
    await waitUntil(() => m.board.all()[0].status === 'ok');
    expect(queueOf(m).dropped_items).toEqual({ queue_full: 0, rejected: 0, retry_exhausted: 1, shutdown: 0 });
  });

  it('sending_queue::enabled false: an interval closed while the previous one is still being sent is dropped', async () => {
    // The control plane answers after 300 ms: the first interval is in flight when the second closes.
    standIn.delayMs = 300;
    const m = await make({
      endpoint: standIn.url,
      max_items_per_request: 1,
      sending_queue: { enabled: false },
    });
    await m.exporter.start();
    // Two requests in one interval: both sent, one after the other.
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 1 }), flow({ dstPort: 2, txBytes: 2 })]));
    m.exporter.flush();
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 3 })]));
    m.exporter.flush();
    expect(queueOf(m).dropped_items.queue_full).toBe(1);
    await standIn.waitFor(() => standIn.traffic.length === 2);
    await waitUntil(() => queueOf(m).pending_items === 0);
    // Idle again: the next interval goes.
    await m.exporter.export(FlowBatch.from([flow({ txBytes: 4 })]));
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 3);
    expect(standIn.traffic.map((c) => c.request.items[0].tx_bytes)).toEqual([1, 2, 4]);
    expect(queueOf(m).dropped_items).toEqual({ queue_full: 1, rejected: 0, retry_exhausted: 0, shutdown: 0 });
    expect(m.logs.map((l) => l.msg)).toContain(
      'sending_queue is disabled and a send is still in progress: dropped the new data',
    );
  });
});

describe('devzero endpoint, tls, headers and compression', () => {
  const TESTDATA = join(import.meta.dirname, 'testdata');

  /** A control plane over TLS (the testdata server certificate): records what SendNetworkTrafficMetrics got. */
  async function tlsControlPlane() {
    const { Server, ServerCredentials, loadPackageDefinition } = await import('@grpc/grpc-js');
    const { loadSync } = await import('@grpc/proto-loader');
    const { DAKR_PROTO, PROTO_LOADER_OPTIONS } = await import('./proto.js');
    const pkg = loadPackageDefinition(loadSync(DAKR_PROTO, PROTO_LOADER_OPTIONS)) as unknown as {
      api: { v1: Record<string, { service: import('@grpc/grpc-js').ServiceDefinition }> };
    };
    const received: { txBytes: number[]; headers: Record<string, unknown> }[] = [];
    const server = new Server();
    server.addService(pkg.api.v1.MetricsCollectorService.service, {
      SendNetworkTrafficMetrics: (
        call: { request: { items: { tx_bytes: number }[] }; metadata: import('@grpc/grpc-js').Metadata },
        cb: (err: null, res: object) => void,
      ) => {
        received.push({
          txBytes: call.request.items.map((i) => i.tx_bytes),
          headers: call.metadata.getMap(),
        });
        cb(null, { processed_count: call.request.items.length });
      },
    });
    server.addService(pkg.api.v1.OperatorHealthService.service, {
      ReportHealth: (_call: unknown, cb: (err: null, res: object) => void) =>
        cb(null, { collect_now: false }),
    });
    const creds = ServerCredentials.createSsl(null, [
      {
        cert_chain: await readFile(join(TESTDATA, 'server.pem')),
        private_key: await readFile(join(TESTDATA, 'server-key.pem')),
      },
    ]);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    return { port, received, close: () => server.forceShutdown() };
  }

  it('host:port over TLS (on by default) with tls::ca_file; headers sent beside the identity headers', async () => {
    const cp = await tlsControlPlane();
    try {
      const m = await make(
        {
          endpoint: `127.0.0.1:${cp.port}`,
          tls: { ca_file: 'ca.pem' },
          headers: { 'x-proxy-tenant': 'shop' },
        },
        { configDir: TESTDATA },
      );
      expect(m.exporter.target).toEqual({ address: `127.0.0.1:${cp.port}`, tls: true });
      await m.exporter.start();
      await m.exporter.export(FlowBatch.from([flow({ txBytes: 5 })]));
      m.exporter.flush();
      await waitUntil(() => cp.received.length === 1);
      expect(cp.received[0].txBytes).toEqual([5]);
      expect(cp.received[0].headers).toMatchObject({
        'x-proxy-tenant': 'shop',
        authorization: 'Bearer tok',
        'x-client': 'zxporter/0.1.6',
        'x-operator-type': 'zxporter',
      });
      // https:// is TLS even with tls.insecure (as the Collector).
      const n = await make(
        { endpoint: `https://127.0.0.1:${cp.port}`, tls: { insecure: true, ca_file: 'ca.pem' } },
        { configDir: TESTDATA },
      );
      await n.exporter.start();
      await n.exporter.export(FlowBatch.from([flow({ txBytes: 6 })]));
      n.exporter.flush();
      await waitUntil(() => cp.received.length === 2);
      expect(cp.received[1].txBytes).toEqual([6]);
    } finally {
      cp.close();
    }
  });

  it('TLS towards a server whose CA is not trusted, or plaintext towards TLS, fails and is retried', async () => {
    const cp = await tlsControlPlane();
    try {
      for (const tls of [{}, { insecure: true }]) {
        const m = await make({
          endpoint: `127.0.0.1:${cp.port}`,
          tls,
          retry_on_failure: { initial_interval: '20ms', max_interval: '50ms' },
        });
        await m.exporter.start();
        await m.exporter.export(FlowBatch.from([flow()]));
        m.exporter.flush();
        await waitUntil(() => (m.exporter.facts().queue as { failed_attempts: number }).failed_attempts >= 2);
        expect((m.exporter.facts().queue as { last_error: string }).last_error).toMatch(/UNAVAILABLE/);
        expect(m.board.all()[0].status).toBe('recoverable_error');
        await m.stop();
      }
      expect(cp.received).toEqual([]);
    } finally {
      cp.close();
    }
  });

  it('host:port with tls::insecure and the DAKR_URL http:// form both reach a plaintext control plane', async () => {
    const a = await make({ endpoint: `127.0.0.1:${standIn.port}`, tls: { insecure: true } });
    const b = await make({ endpoint: `http://127.0.0.1:${standIn.port}` });
    expect([a.exporter.target?.tls, b.exporter.target?.tls]).toEqual([false, false]);
    await a.exporter.start();
    await b.exporter.start();
    await a.exporter.export(FlowBatch.from([flow({ txBytes: 1 })]));
    a.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    await b.exporter.export(FlowBatch.from([flow({ txBytes: 2 })]));
    b.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 2);
    expect(standIn.traffic.map((c) => c.request.items[0].tx_bytes)).toEqual([1, 2]);
  });

  it('compression none: nothing is gzipped, even a large message', async () => {
    const m = await make({ endpoint: standIn.url, compression: 'none' });
    await m.exporter.start();
    await m.exporter.export(
      FlowBatch.from(Array.from({ length: 200 }, (_, k) => flow({ dstPort: 1000 + k }))),
    );
    m.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 1);
    expect(standIn.traffic[0].request.items).toHaveLength(200);
    expect(standIn.traffic[0].compressed).toBe(false);
    // The same interval with the default (gzip) is compressed.
    const g = await make({ endpoint: standIn.url });
    await g.exporter.start();
    await g.exporter.export(
      FlowBatch.from(Array.from({ length: 200 }, (_, k) => flow({ dstPort: 1000 + k }))),
    );
    g.exporter.flush();
    await standIn.waitFor(() => standIn.traffic.length === 2);
    expect(standIn.traffic[1].compressed).toBe(true);
  });

  it('a TLS file that cannot be read is named by validate', async () => {
    const config = devzeroExporterConfig.parse({ endpoint: 'dakr:443', tls: { ca_file: 'missing.pem' } });
    const issues = await devzeroExporterFactory.validate?.(config, { configDir: TESTDATA } as never);
    expect(issues).toEqual([
      { key: 'tls::ca_file', message: `cannot read ${join(TESTDATA, 'missing.pem')}: ENOENT` },
    ]);
  });
});

class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

describe('devzero exporter in a Service', () => {
  it('one instance serves the flows and the dns pipeline: one start, one shutdown, one request, its metrics', async () => {
    const made: { exporter: DevzeroExporter; signals: readonly string[] }[] = [];
    const sinks = new Map<string, BatchSink>();
    const source = (type: string, signal: 'flows' | 'dns') =>
      defineReceiver({
        kind: 'receiver',
        type,
        stability: 'development',
        description: `hands the test the ${signal} sink`,
        signals: [signal],
        config: z.strictObject({}),
        create: (_s, _c, next) => {
          sinks.set(signal, next);
          return {};
        },
      });
    const registry = new Registry([
      source('flow_src', 'flows'),
      source('dns_src', 'dns'),
      defineExporter({
        ...devzeroExporterFactory,
        create: async (settings, config) => {
          const exporter = (await devzeroExporterFactory.create(settings, config)) as DevzeroExporter;
          vi.spyOn(exporter, 'start');
          vi.spyOn(exporter, 'shutdown');
          made.push({ exporter, signals: settings.signals });
          return exporter;
        },
      }),
    ]);
    const config = resolveConfig(
      {
        tree: {
          receivers: { flow_src: {}, dns_src: {} },
          exporters: {
            devzero: { endpoint: standIn.url, token: 't', flush_interval: '1h', heartbeat_interval: '1h' },
          },
          service: {
            pipelines: {
              flows: { receivers: ['flow_src'], exporters: ['devzero'] },
              dns: { receivers: ['dns_src'], exporters: ['devzero'] },
            },
          },
        },
        positions: new Map(),
        configDirs: new Map(),
      },
      registry,
      {},
    );
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const service = await Service.build(config, { logger: silentLogger(), meterProvider });
    try {
      await service.start();
      expect(made).toHaveLength(1);
      const [{ exporter, signals }] = made;
      expect([...signals].sort()).toEqual(['dns', 'flows']);
      expect(exporter.start).toHaveBeenCalledTimes(1);
      await standIn.waitFor(() => standIn.health.length === 1);

      sinks.get('flows')?.consume(FlowBatch.from([flow({ dstIp: '52.1.2.3' })]));
      sinks.get('dns')?.consume(dnsSample());
      await waitUntil(() => {
        const interval = exporter.facts().interval as { flows: number; dns_lookups: number };
        return interval.flows === 1 && interval.dns_lookups === 1;
      });
      exporter.flush();
      await standIn.waitFor(() => standIn.traffic.length === 1);
      expect(standIn.traffic[0].request).toMatchObject({
        items: [{ dst_ip: '52.1.2.3', tx_bytes: 1000 }],
        dns_lookups: [{ client_ip: '10.0.1.34', domain: 'api.stripe.com' }],
        ip2domain: { '52.1.2.3': 'edge.stripe.com', '2600:1f18::5': 'edge.stripe.com' },
      });
      await waitUntil(() => (exporter.facts().queue as { sent_items: number }).sent_items === 2);
      await waitUntil(() => (exporter.facts().heartbeat as { success: number }).success === 1);

      // One status entry per signal, both describing the one exporter.
      const entries = service.components().filter((c) => c.kind === 'exporter' && c.id === 'devzero');
      expect(entries.map((c) => c.signal).sort()).toEqual(['dns', 'flows']);
      for (const e of entries) expect(e.details?.()).toMatchObject({ mode: 'send', flushes: { queued: 1 } });

      const { resourceMetrics } = await reader.collect();
      const metrics = resourceMetrics.scopeMetrics
        .filter((s) => s.scope.name.startsWith('netmon/exporter/devzero'))
        .flatMap((s) => s.metrics);
      const point = (name: string, attrs: Record<string, string> = {}) =>
        metrics
          .find((m) => m.descriptor.name === name)
          ?.dataPoints.find((d) => Object.entries(attrs).every(([k, v]) => d.attributes[k] === v));
      const value = (name: string, attrs?: Record<string, string>) => point(name, attrs)?.value;
      // Every metric it makes is declared by its factory.
      const declared = new Set(Object.values(devzeroExporterFactory.metrics ?? {}).map((m) => m.name));
      expect(metrics.map((m) => m.descriptor.name).filter((n) => !declared.has(n))).toEqual([]);
      expect(point('netmon_devzero_flushes', { outcome: 'queued' })?.attributes).toEqual({
        component: 'devzero',
        outcome: 'queued',
      });
      expect(value('netmon_devzero_flushes', { outcome: 'queued' })).toBe(1);
      expect(value('netmon_devzero_flushes', { outcome: 'empty' })).toBe(0);
      expect(value('netmon_devzero_requests')).toBe(1);
      expect(value('netmon_devzero_heartbeats', { outcome: 'success' })).toBe(1);
      expect(value('netmon_devzero_heartbeats', { outcome: 'failure' })).toBe(0);
      expect(value('netmon_devzero_ip2domain_entries')).toBe(2);
      expect(value('netmon_devzero_early_flushes')).toBe(0);
      expect(value('netmon_devzero_state_write_failures')).toBe(0);
      expect(value('netmon_devzero_flush_items')).toMatchObject({ count: 1, sum: 2 });
      expect(value('netmon_exporter_sent_items')).toBe(2);
      expect(value('netmon_exporter_queue_items')).toBe(0);

      await service.shutdown();
      expect(exporter.start).toHaveBeenCalledTimes(1);
      expect(exporter.shutdown).toHaveBeenCalledTimes(1);
      expect(entries.map((c) => c.status)).toEqual(['stopped', 'stopped']);
    } finally {
      await service.shutdown();
      await meterProvider.shutdown();
    }
  });
});
