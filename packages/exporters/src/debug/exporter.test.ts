import { DnsBatch, DnsRcode, DnsType, FlowBatch, type FlowInit } from '@netmon/core';
import { describeConformance, runExporterInService, testSettings } from '@netmon/core/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type DebugExporterConfig, debugExporterConfig } from './config.js';
import {
  DETAIL_LINES,
  DebugExporter,
  humanBytes,
  humanLatency,
  MAX_ENTRIES,
  protocolName,
} from './exporter.js';
import { debugExporterFactory } from './factory.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function sampleLookups(): DnsBatch {
  return DnsBatch.from([
    {
      time: T0 + 1000,
      clientIp: '10.0.1.34',
      question: 'api.stripe.com',
      answers: [{ name: 'api.stripe.com', type: DnsType.A, ttl: 60, ip: '54.187.174.169' }],
    },
    {
      time: T0 + 2000,
      clientIp: '10.0.1.35',
      question: 'www.example.com',
      answers: [
        { name: 'www.example.com', type: DnsType.CNAME, ttl: 300, target: 'example.cdn.net' },
        { name: 'example.cdn.net', type: DnsType.AAAA, ttl: 30, ip: '2606:4700::1' },
      ],
    },
    { time: T0 + 3000, clientIp: '10.0.1.34', question: 'api.stripe.com', answers: [] },
  ]);
}

// The conformance runs print their summaries to stdout (the default writer) when they shut down.
describeConformance(debugExporterFactory, { signal: 'dns', sample: sampleLookups });

const frontend = { 'src.k8s.namespace.name': 'shop', 'src.k8s.pod.name': 'frontend-a' };
const tcp = (over: Partial<FlowInit>): FlowInit => ({
  timeStart: T0,
  timeEnd: T0 + 10_000,
  protocol: 6,
  srcIp: '10.0.1.34',
  srcPort: 40000,
  dstIp: '10.0.1.72',
  dstPort: 8080,
  ...over,
});
const toCart = (srcPort: number, cost: number): FlowInit =>
  tcp({
    srcPort,
    txBytes: 1024,
    rxBytes: 1024 * 1024,
    attributes: {
      ...frontend,
      'dst.k8s.namespace.name': 'shop',
      'dst.k8s.pod.name': 'cart-b',
      'traffic.class': 'same_node',
      'cost.usd': cost,
    },
  });

function batches(): FlowBatch[] {
  return [
    FlowBatch.from([
      toCart(40000, 0.0001),
      toCart(40001, 0.0002),
      tcp({
        srcPort: 50000,
        dstIp: '54.187.174.169',
        dstPort: 443,
        txBytes: 300_000,
        rxBytes: 5_000_000,
        attributes: { 'traffic.class': 'internet_egress' },
      }),
      tcp({
        protocol: 17,
        srcPort: 51000,
        dstIp: '10.0.1.10',
        dstPort: 53,
        txBytes: 100,
        rxBytes: 200,
        attributes: { ...frontend, 'dst.k8s.namespace.name': 'kube-system', 'dst.k8s.pod.name': 'coredns-x' },
      }),
    ]).seal(),
    FlowBatch.from([
      {
        timeStart: T0 + 10_000,
        timeEnd: T0 + 20_000,
        protocol: 1,
        srcIp: '10.0.1.17',
        dstIp: '10.0.2.41',
        txBytes: 84,
        rxBytes: 84,
        txPackets: 1,
        rxPackets: 1,
      },
      {
        timeStart: T0 + 10_000,
        timeEnd: T0 + 20_000,
        protocol: 6,
        srcIp: 'fd00::1',
        srcPort: 33000,
        dstIp: 'fd00::2',
        dstPort: 443,
        txBytes: 3 * 2 ** 30,
      },
    ]).seal(),
  ];
}

function capture(config: Partial<Record<keyof DebugExporterConfig, unknown>> = {}, id = 'debug') {
  const out: string[] = [];
  const exporter = new DebugExporter(
    testSettings('exporter', id),
    debugExporterConfig.parse(config),
    (text) => out.push(text),
  );
  return { exporter, out };
}

describe('debug exporter helpers', () => {
  it('formats bytes in binary units', () => {
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(1023)).toBe('1023 B');
    expect(humanBytes(1024)).toBe('1.00 KiB');
    expect(humanBytes(1536)).toBe('1.50 KiB');
    expect(humanBytes(5 * 1024 * 1024)).toBe('5.00 MiB');
    expect(humanBytes(3 * 2 ** 30)).toBe('3.00 GiB');
    expect(humanBytes(2 ** 40)).toBe('1.00 TiB');
  });

  it('names protocols', () => {
    expect([1, 6, 17, 58, 132, 47].map(protocolName)).toEqual([
      'icmp',
      'tcp',
      'udp',
      'ipv6-icmp',
      'sctp',
      '47',
    ]);
  });

  it('parses its config with defaults', () => {
    expect(debugExporterConfig.parse({})).toEqual({ interval: 10_000, top: 10, verbosity: 'basic' });
    expect(debugExporterConfig.parse({ interval: '1m30s' }).interval).toBe(90_000);
    expect(debugExporterConfig.safeParse({ interval: '10ms' }).success).toBe(false);
    expect(debugExporterConfig.safeParse({ top: 0 }).success).toBe(false);
  });
});

describe('debug exporter', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('prints counts, byte totals and the top conversations by bytes', () => {
    const { exporter, out } = capture({ top: 4 });
    for (const b of batches()) exporter.export(b);
    exporter.flush();
    expect(out).toHaveLength(1);
    expect(out[0]).toBe(
      [
        'debug flows 2026-01-01T00:00:00.000Z .. 2026-01-01T00:00:20.000Z: 2 batches, 6 flows, tx 3.00 GiB, rx 6.77 MiB',
        '  top 4 of 5 conversations by bytes:',
        '    #  SRC              DST                    PORT  PROTO  FLOWS          TX        RX     TOTAL  CLASS            COST_USD',
        '    1  fd00::1          fd00::2                 443  tcp        1    3.00 GiB       0 B  3.00 GiB  -                       -',
        '    2  10.0.1.34        54.187.174.169          443  tcp        1  292.97 KiB  4.77 MiB  5.05 MiB  internet_egress         -',
        '    3  shop/frontend-a  shop/cart-b            8080  tcp        2    2.00 KiB  2.00 MiB  2.00 MiB  same_node        0.000300',
        '    4  shop/frontend-a  kube-system/coredns-x    53  udp        1       100 B     200 B     300 B  -                       -',
        '',
      ].join('\n'),
    );
  });

  it('leaves out the class and cost columns when no listed conversation has them', () => {
    const { exporter, out } = capture();
    exporter.export(batches()[1]);
    exporter.flush();
    expect(out[0].split('\n').slice(1, 5)).toEqual([
      '  top 2 of 2 conversations by bytes:',
      '    #  SRC        DST        PORT  PROTO  FLOWS        TX    RX     TOTAL',
      '    1  fd00::1    fd00::2     443  tcp        1  3.00 GiB   0 B  3.00 GiB',
      '    2  10.0.1.17  10.0.2.41     -  icmp       1      84 B  84 B     168 B',
    ]);
  });

  it('shows cumulative counters as of the latest dump instead of summing dumps', () => {
    const { exporter, out } = capture();
    const dump = (at: number, tx: number) =>
      FlowBatch.from(
        [tcp({ timeEnd: T0 + at, txBytes: tx }), tcp({ timeEnd: T0 + at, srcPort: 2, txBytes: 1 })],
        'cumulative',
      );
    exporter.export(dump(10_000, 1000));
    exporter.export(dump(20_000, 3000)); // the same two flows, later: replaces the first dump
    exporter.export(dump(10_000, 5)); // an older dump arriving late is ignored
    exporter.flush();
    expect(out[0].split('\n')[0]).toBe(
      'debug flows 2026-01-01T00:00:00.000Z .. 2026-01-01T00:00:20.000Z: 1 batch, 2 flows, tx 2.93 KiB, rx 0 B (cumulative counters as of 2026-01-01T00:00:20.000Z)',
    );
  });

  it('aggregates conversations across batches and ranks ties by name', () => {
    const { exporter, out } = capture({ top: 2 });
    exporter.export(
      FlowBatch.from([tcp({ dstIp: '10.0.0.2', txBytes: 500 }), tcp({ dstIp: '10.0.0.1', txBytes: 500 })]),
    );
    exporter.export(
      FlowBatch.from([
        tcp({ dstIp: '10.0.0.3', txBytes: 400 }),
        tcp({ srcPort: 1, dstIp: '10.0.0.3', txBytes: 400 }),
      ]),
    );
    exporter.flush();
    const rows = out[0].split('\n').slice(3, 5);
    expect(rows[0]).toMatch(/^ {4}1 {2}10\.0\.1\.34 {2}10\.0\.0\.3 .* 2 {2}800 B .* 800 B$/);
    expect(rows[1]).toMatch(/^ {4}2 {2}10\.0\.1\.34 {2}10\.0\.0\.1 .* 1 {2}500 B .* 500 B$/);
    expect(out[0]).toContain('top 2 of 3 conversations by bytes:');
  });

  it('sums conversations past the table limit into one (other) entry', () => {
    const { exporter, out } = capture({ top: 1 });
    const n = MAX_ENTRIES + 5;
    const batch = new FlowBatch(n);
    for (let i = 0; i < n; i++) {
      batch.push(
        tcp({
          dstIp: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
          txBytes: i < MAX_ENTRIES ? 1 : 1024 * 1024,
        }),
      );
    }
    exporter.export(batch);
    exporter.flush();
    const lines = out[0].split('\n');
    expect(lines[0]).toContain(`1 batch, ${n} flows, tx 5.10 MiB, rx 0 B`);
    expect(lines[1]).toBe(`  top 1 of ${MAX_ENTRIES + 1} conversations by bytes:`);
    expect(lines[3].trim().split(/ {2,}/)).toEqual([
      '1',
      '(other)',
      '(other)',
      '-',
      '-',
      '5',
      '5.00 MiB',
      '0 B',
      '5.00 MiB',
    ]);
  });

  it('with verbosity: detailed, also prints every flow, capped at 1000 lines', () => {
    const { exporter, out } = capture({ verbosity: 'detailed', top: 1 });
    for (const b of batches()) exporter.export(b);
    exporter.flush();
    const lines = out[0].split('\n');
    const at = lines.indexOf('  flows:');
    expect(lines.slice(at + 1, -1)).toEqual([
      '    2026-01-01T00:00:10.000Z  tcp  10.0.1.34:40000 -> 10.0.1.72:8080  tx 1.00 KiB (0 pkts)  rx 1.00 MiB (0 pkts)  cost.usd=0.0001 dst.k8s.namespace.name=shop dst.k8s.pod.name=cart-b src.k8s.namespace.name=shop src.k8s.pod.name=frontend-a traffic.class=same_node',
      '    2026-01-01T00:00:10.000Z  tcp  10.0.1.34:40001 -> 10.0.1.72:8080  tx 1.00 KiB (0 pkts)  rx 1.00 MiB (0 pkts)  cost.usd=0.0002 dst.k8s.namespace.name=shop dst.k8s.pod.name=cart-b src.k8s.namespace.name=shop src.k8s.pod.name=frontend-a traffic.class=same_node',
      '    2026-01-01T00:00:10.000Z  tcp  10.0.1.34:50000 -> 54.187.174.169:443  tx 292.97 KiB (0 pkts)  rx 4.77 MiB (0 pkts)  traffic.class=internet_egress',
      '    2026-01-01T00:00:10.000Z  udp  10.0.1.34:51000 -> 10.0.1.10:53  tx 100 B (0 pkts)  rx 200 B (0 pkts)  dst.k8s.namespace.name=kube-system dst.k8s.pod.name=coredns-x src.k8s.namespace.name=shop src.k8s.pod.name=frontend-a',
      '    2026-01-01T00:00:20.000Z  icmp  10.0.1.17 -> 10.0.2.41  tx 84 B (1 pkt)  rx 84 B (1 pkt)',
      '    2026-01-01T00:00:20.000Z  tcp  [fd00::1]:33000 -> [fd00::2]:443  tx 3.00 GiB (0 pkts)  rx 0 B (0 pkts)',
    ]);

    const many = capture({ verbosity: 'detailed' });
    const flows = Array.from({ length: DETAIL_LINES + 234 }, (_, i) => tcp({ srcPort: 1 + i, txBytes: i }));
    many.exporter.export(FlowBatch.from(flows.slice(0, 700)));
    many.exporter.export(FlowBatch.from(flows.slice(700)));
    many.exporter.flush();
    const printed = many.out[0].split('\n');
    expect(printed.filter((l) => l.startsWith('    2026-'))).toHaveLength(DETAIL_LINES);
    expect(printed.at(-2)).toBe(
      '    … 234 more flows not shown (detailed output stops at 1000 per interval)',
    );
    expect(printed[0]).toContain('2 batches, 1234 flows');
  });

  it('summarises DNS lookups: count and top questions', () => {
    const { exporter, out } = capture({ verbosity: 'detailed' }, 'debug/dns');
    exporter.export(sampleLookups().seal());
    exporter.flush();
    expect(out[0]).toBe(
      [
        'debug/dns dns 2026-01-01T00:00:01.000Z .. 2026-01-01T00:00:03.000Z: 1 batch, 3 lookups, 2 questions',
        '  top 2 questions by lookups:',
        '    #  QUESTION         LOOKUPS',
        '    1  api.stripe.com         2',
        '    2  www.example.com        1',
        '  lookups:',
        '    2026-01-01T00:00:01.000Z  10.0.1.34 -> api.stripe.com: NOERROR latency unknown, A 54.187.174.169 (ttl 60s)',
        '    2026-01-01T00:00:02.000Z  10.0.1.35 -> www.example.com: NOERROR latency unknown, CNAME example.cdn.net (ttl 300s), AAAA 2606:4700::1 (ttl 30s)',
        '    2026-01-01T00:00:03.000Z  10.0.1.34 -> api.stripe.com: NOERROR latency unknown, no answers',
        '',
      ].join('\n'),
    );
  });

  it('a lookup line shows the question type, response code, latency, canonical name, cgroup and pod UID when known', () => {
    const { exporter, out } = capture({ verbosity: 'detailed' }, 'debug/dns');
    exporter.export(
      DnsBatch.from([
        {
          time: T0 + 1000,
          clientIp: '10.0.1.35',
          question: 'www.example.com',
          questionType: DnsType.AAAA,
          rcode: DnsRcode.NOERROR,
          latencyMs: 12.345,
          cgroupId: 4242,
          podUid: '0f3c9a52-7e1d-4a8b-9c3e-2b7d6f1a0e55',
          canonical: 'example.cdn.net',
          answers: [
            { name: 'www.example.com', type: DnsType.CNAME, ttl: 300, target: 'example.cdn.net' },
            { name: 'example.cdn.net', type: DnsType.AAAA, ttl: 30, ip: '2606:4700::1' },
          ],
        },
        {
          time: T0 + 2000,
          clientIp: '10.0.1.35',
          question: 'nope.example',
          questionType: 65,
          rcode: DnsRcode.NXDOMAIN,
          latencyMs: 2500,
          answers: [],
        },
        {
          time: T0 + 3000,
          clientIp: '10.0.1.35',
          question: 'x.example',
          questionType: 99,
          rcode: 23,
          answers: [],
        },
      ]).seal(),
    );
    exporter.flush();
    expect(out[0].split('\n').slice(-4, -1)).toEqual([
      '    2026-01-01T00:00:01.000Z  10.0.1.35 -> www.example.com AAAA: NOERROR in 12.35 ms, CNAME example.cdn.net (ttl 300s), AAAA 2606:4700::1 (ttl 30s)  canonical=example.cdn.net cgroup=4242 pod_uid=0f3c9a52-7e1d-4a8b-9c3e-2b7d6f1a0e55',
      '    2026-01-01T00:00:02.000Z  10.0.1.35 -> nope.example HTTPS: NXDOMAIN in 2.50 s, no answers',
      '    2026-01-01T00:00:03.000Z  10.0.1.35 -> x.example TYPE99: RCODE23 latency unknown, no answers',
    ]);
    expect(humanLatency(0.35)).toBe('0.35 ms');
  });

  it('prints each interval on its timer, nothing for an empty one, and the partial one at shutdown', () => {
    vi.useFakeTimers();
    const { exporter, out } = capture({ interval: '5s' });
    exporter.start();
    expect(vi.getTimerCount()).toBe(1);
    exporter.export(batches()[0]);
    vi.advanceTimersByTime(4_999);
    expect(out).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(out).toHaveLength(1);
    expect(out[0]).toContain(': 1 batch, 4 flows,');
    vi.advanceTimersByTime(10_000);
    expect(out).toHaveLength(1);
    exporter.export(batches()[1]);
    exporter.shutdown();
    expect(vi.getTimerCount()).toBe(0);
    expect(out).toHaveLength(2);
    expect(out[1]).toContain(': 1 batch, 2 flows, tx 3.00 GiB, rx 84 B');
    exporter.shutdown();
    expect(out).toHaveLength(2);
  });

  it('never keeps the process alive: its timer is unref’d', () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const { exporter } = capture();
    exporter.start();
    expect(timers()).toBe(before);
    exporter.shutdown();
  });
});

describe('debug exporter: one instance for flows and dns pipelines', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is made, started and shut down once, and prints both signals in one summary', async () => {
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((text) => {
      out.push(String(text));
      return true;
    });
    const { service, life } = await runExporterInService(
      debugExporterFactory,
      { interval: '1h' },
      { flows: () => batches()[0], dns: sampleLookups },
    );
    const items = () =>
      service
        .components()
        .filter((c) => c.id === 'debug')
        .map((c) => [c.signal, c.items.in]);
    for (let i = 0; i < 100 && items().some(([, n]) => n === 0); i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(items()).toEqual([
      ['flows', 4],
      ['dns', 3],
    ]);
    await service.shutdown();
    expect(life).toEqual({ created: [['flows', 'dns']], starts: 1, shutdowns: 1 });
    // Shutdown printed the partial interval once, flows then dns, in one write.
    expect(out).toHaveLength(1);
    const headers = out[0].split('\n').filter((l) => l.startsWith('debug '));
    expect(headers).toEqual([
      'debug flows 2026-01-01T00:00:00.000Z .. 2026-01-01T00:00:10.000Z: 1 batch, 4 flows, tx 295.07 KiB, rx 6.77 MiB',
      'debug dns 2026-01-01T00:00:01.000Z .. 2026-01-01T00:00:03.000Z: 1 batch, 3 lookups, 2 questions',
    ]);
  });
});
