// The dns receiver against the real kernel: its programs on a real cgroup, dnsmasq answering in a
// network namespace, dig asking from a process in the cgroup over UDP and TCP, IPv4 and IPv6 — dig's own
// answer section is the oracle for the records and TTLs — and the dns_cache extension fed by it.
// Root only: skipped locally without it, a failure in CI.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type DnsBatch, type DnsLookupInit, parseIp, rcodeName } from '@netmon/core';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { createDnsCache, dnsCacheConfig } from '@netmon/extensions';
import { dnsReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsReceiver } from '../../packages/receivers/src/dns/receiver.js';
import { AgentProcess, freePort } from '../harness/agent.js';
import { attachedPrograms, TestCgroup } from '../harness/cgroup.js';
import { DakrStandIn } from '../harness/dakr-stand-in.js';
import { SHOP_IP, startDnsmasq } from '../harness/dnsmasq.js';
import { NetnsPair, privileged, TRAFFIC, waitForOutput } from '../harness/netns.js';
import { OtlpSink } from '../harness/otlp-sink.js';
import { PrometheusServer } from '../harness/prometheus-server.js';

/** The public-looking address (TEST-NET-3, RFC 5737) of namespace a that shop.test resolves to. */

interface DigAnswer {
  name: string;
  ttl: number;
  type: string;
  value: string;
}

interface Dig {
  status: string;
  answers: DigAnswer[];
  /** dig's "Query time", ms: from its send to its receive, in user space. */
  queryMs: number;
}

function parseDig(text: string): Dig {
  const status = /status: (\w+)/.exec(text)?.[1] ?? '';
  const queryMs = Number(/Query time: (\d+) msec/.exec(text)?.[1] ?? Number.NaN);
  const answers: DigAnswer[] = [];
  const section = text.split(';; ANSWER SECTION:')[1]?.split('\n\n')[0] ?? '';
  for (const line of section.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || line.startsWith(';')) continue;
    answers.push({
      name: f[0].replace(/\.$/, ''),
      ttl: Number(f[1]),
      type: f[3],
      value: f[4].replace(/\.$/, ''),
    });
  }
  return { status, answers, queryMs };
}

const TYPE: Record<number, string> = { 1: 'A', 5: 'CNAME', 28: 'AAAA' };

function asDig(l: DnsLookupInit): DigAnswer[] {
  return l.answers.map((a) => ({
    name: a.name,
    ttl: a.ttl,
    type: TYPE[a.type],
    value: a.ip ?? a.target ?? '',
  }));
}

/** dig from a process in `cgroup`, in namespace b. */
function dig(cg: TestCgroup, net: NetnsPair, cgroup: string, args: string[]): Promise<Dig> {
  return cg.run(cgroup, 'dig', ['+time=2', '+tries=1', ...args], net.b).then(parseDig);
}

function lookups(batches: DnsBatch[]): DnsLookupInit[] {
  return batches.flatMap((b) => Array.from({ length: b.length }, (_, i) => b.lookup(i)));
}

describe.runIf(privileged())('dns receiver on a real cgroup', () => {
  let net: NetnsPair;
  let cg: TestCgroup;

  beforeAll(async () => {
    net = await NetnsPair.create('dn');
    await net.exec(net.a, 'ip', ['addr', 'add', `${SHOP_IP}/32`, 'dev', 'lo']);
    await net.exec(net.b, 'ip', ['route', 'add', `${SHOP_IP}/32`, 'via', net.ipA]);
    const dnsmasq = startDnsmasq(net);
    await waitForOutput(dnsmasq, /started, version/);
    cg = new TestCgroup('netmon-dns');
  });

  afterAll(async () => {
    try {
      await cg?.destroy();
    } finally {
      await net?.destroy();
    }
  });

  async function receiverOn(
    cgroup: string,
    cache?: ReturnType<typeof createDnsCache>,
    extra: Record<string, unknown> = {},
  ) {
    const sink = new CollectingSink<DnsBatch>();
    const settings = testSettings('receiver', 'dns/test', { signals: ['dns'] });
    const config = dnsReceiverFactory.config.parse({ cgroup_path: cgroup, read_interval: '1h', ...extra });
    const receiver = new DnsReceiver(settings, config, sink, cache);
    receiver.start();
    return {
      receiver,
      sink,
      async stop() {
        await receiver.shutdown();
        return lookups(sink.batches);
      },
    };
  }

  const digIn = (cgroup: string, args: string[]) => dig(cg, net, cgroup, args);

  it('gives each lookup over UDP and TCP, IPv4 and IPv6, its records and TTLs as dig got them, its response code, latency, client and cgroup; nothing of a process outside the cgroup', async () => {
    const monitored = cg.child('traced');
    const outside = cg.child('not-traced');
    const r = await receiverOn(monitored);
    const asked: { q: string; transport: 'udp' | 'tcp'; server: string; type: string; dig: Dig }[] = [];
    let got: DnsLookupInit[];
    try {
      for (const [q, transport, server, type] of [
        ['www.shop.test', 'udp', net.ipA, 'A'],
        ['www.shop.test', 'tcp', net.ip6A, 'AAAA'],
        ['deep.shop.test', 'udp', net.ip6A, 'A'],
        ['deep.shop.test', 'tcp', net.ipA, 'AAAA'],
        ['missing.shop.test', 'udp', net.ipA, 'A'],
        ['missing.shop.test', 'tcp', net.ip6A, 'A'],
      ] as const) {
        const d = await digIn(monitored, [...(transport === 'tcp' ? ['+tcp'] : []), `@${server}`, q, type]);
        asked.push({ q, transport, server, type, dig: d });
      }
      await digIn(outside, [`@${net.ipA}`, 'shop.test', 'A']);
    } finally {
      got = await r.stop();
    }
    expect(got).toHaveLength(asked.length);
    const id = TestCgroup.id(monitored);
    for (const [i, a] of asked.entries()) {
      const l = got[i];
      const where = `${a.q} ${a.type} over ${a.transport} to ${a.server}`;
      expect(l.question, where).toBe(a.q);
      expect(rcodeName(l.rcode ?? 0), where).toBe(a.dig.status);
      expect(asDig(l), where).toEqual(a.dig.answers);
      expect(l.protocol, where).toBe(a.transport === 'tcp' ? 6 : 17);
      expect(l.serverIp, where).toBe(a.server);
      expect(l.clientIp, where).toBe(a.server.includes(':') ? net.ip6B : net.ipB);
      expect(l.cgroupId, where).toBe(id);
      expect(l.questionType, where).toBe(a.type === 'A' ? 1 : 28);
      // From the query leaving the socket to the answer reaching it. dig prints whole milliseconds, taken
      // at other points (over TCP, not around the segments): the two agree to a few ms on this host.
      expect(l.latencyMs, where).toBeGreaterThan(0);
      expect(l.latencyMs, where).toBeLessThanOrEqual(a.dig.queryMs + 10);
    }
    expect(got[0].answers).toEqual([{ name: 'www.shop.test', type: 1, ttl: 120, ip: net.ipA }]);
    expect(got[2].canonical).toBe('www.shop.test');
    expect(got[2].answers.map((x) => x.ttl)).toEqual([30, 60, 120]);
    expect(got[4].rcode).toBe(3); // NXDOMAIN
    expect(got[4].answers).toEqual([]);
    expect(r.receiver.counters).toMatchObject({ lookups: 6, unmatched: 0, lostPackets: 0, malformed: {} });
    expect(await attachedPrograms(monitored)).toEqual([]);
  });

  it('traces a query a local NAT sent to another port (a sidecar DNS capture) by its socket, paired with its answer', async () => {
    const monitored = cg.child('redirected');
    // A second server on port 5300; queries to 10.200.0.53:53 are rewritten to it on their way out.
    const other = startDnsmasq(net, 5300);
    await waitForOutput(other, /started, version/);
    await net.exec(net.b, 'nft', [
      'add table ip netmon_dns_nat; add chain ip netmon_dns_nat out { type nat hook output priority -100; }; ' +
        `add rule ip netmon_dns_nat out ip daddr 10.200.0.53 udp dport 53 dnat to ${net.ipA}:5300`,
    ]);
    const r = await receiverOn(monitored);
    let got: DnsLookupInit[];
    let d: Dig;
    try {
      d = await digIn(monitored, ['@10.200.0.53', 'www.shop.test', 'A']);
    } finally {
      got = await r.stop();
      await net.exec(net.b, 'nft', ['delete table ip netmon_dns_nat']);
    }
    expect(d.answers).toEqual([{ name: 'www.shop.test', ttl: 120, type: 'A', value: net.ipA }]);
    expect(got).toHaveLength(1);
    // The answer as the client's socket saw it: from the address it dialled, with the query's latency.
    expect(got[0]).toMatchObject({ question: 'www.shop.test', serverIp: '10.200.0.53', clientIp: net.ipB });
    expect(got[0].latencyMs).toBeGreaterThan(0);
    expect(r.receiver.counters).toMatchObject({ lookups: 1, unmatched: 0 });
  });

  it('pairs a query whose source NAT rewrote on its way out (a masquerade) with its answer by the socket: a lookup with latency, not an unsolicited answer', async () => {
    const monitored = cg.child('masqueraded');
    // The egress hook runs after POSTROUTING: the query leaves as 10.200.0.9:40000-40100, the answer is
    // de-NATed to the socket's own address and port before the ingress hook sees it.
    await net.exec(net.b, 'ip', ['addr', 'add', '10.200.0.9/32', 'dev', 'lo']);
    await net.exec(net.a, 'ip', ['route', 'add', '10.200.0.9/32', 'via', net.ipB]);
    await net.exec(net.b, 'nft', [
      'add table ip netmon_dns_snat; add chain ip netmon_dns_snat post { type nat hook postrouting priority 100; }; ' +
        `add rule ip netmon_dns_snat post ip daddr ${net.ipA} udp dport 53 snat to 10.200.0.9:40000-40100`,
    ]);
    // Past its first query_timeout an answer to no query seen is skipped as unsolicited.
    const r = await receiverOn(monitored, undefined, { query_timeout: '200ms' });
    let got: DnsLookupInit[];
    let d: Dig;
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      d = await digIn(monitored, [`@${net.ipA}`, 'www.shop.test', 'A']);
    } finally {
      got = await r.stop();
      await net.exec(net.b, 'nft', ['delete table ip netmon_dns_snat']);
      await net.exec(net.a, 'ip', ['route', 'del', '10.200.0.9/32']);
      await net.exec(net.b, 'ip', ['addr', 'del', '10.200.0.9/32', 'dev', 'lo']);
    }
    expect(d.answers).toEqual([{ name: 'www.shop.test', ttl: 120, type: 'A', value: net.ipA }]);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ question: 'www.shop.test', serverIp: net.ipA, clientIp: net.ipB });
    expect(got[0].latencyMs).toBeGreaterThan(0);
    expect(r.receiver.counters).toMatchObject({ lookups: 1, unmatched: 0, skipped: {} });
  });

  it('teaches the dns_cache extension the names, per client, and the cache forgets them when the TTL runs out', async () => {
    const monitored = cg.child('cache');
    const cache = createDnsCache(
      testSettings('extension', 'dns_cache'),
      dnsCacheConfig.parse({ min_ttl: '0s' }),
    );
    const r = await receiverOn(monitored, cache);
    const addr = (ip: string) => {
      const b = new Uint8Array(16);
      parseIp(ip, b, 0);
      return b;
    };
    const client = addr(net.ipB);
    try {
      await digIn(monitored, [`@${net.ipA}`, 'short.shop.test', 'A']);
      await digIn(monitored, [`@${net.ipA}`, 'deep.shop.test', 'A']);
      // The receiver reads at shutdown only (read_interval 1h): stop it to hand the answers over.
    } finally {
      await r.stop();
    }
    expect(cache.domainOf(addr('10.200.0.7'), 0, client, 0)).toEqual({
      name: 'short.shop.test',
      canonical: '',
    });
    expect(cache.domainOf(addr(net.ipA), 0, client, 0)).toEqual({
      name: 'deep.shop.test',
      canonical: 'www.shop.test',
    });
    expect(cache.domainOf(addr(net.ipA), 0)).toEqual({ name: 'deep.shop.test', canonical: 'www.shop.test' });
    // short.shop.test's record has a TTL of 2 s; deep's chain, 30 s.
    await new Promise((done) => setTimeout(done, 2_500));
    expect(cache.domainOf(addr('10.200.0.7'), 0, client, 0)).toBeUndefined();
    expect(cache.domainOf(addr(net.ipA), 0, client, 0)?.name).toBe('deep.shop.test');
    await cache.shutdown?.();
  });

  it('names a connection to a resolved address by its domain, and Prometheus has its bytes and cost by domain and the lookups by name and response code', async () => {
    const monitored = cg.child('agent');
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-dns-'));
    writeFileSync(path.join(dir, 'blob.bin'), Buffer.alloc(300_000, 7));
    const http = net.spawn(net.a, 'python3', [TRAFFIC, 'serve-http', dir, '::', '8080']);
    await waitForOutput(http, /listening/);
    const metricsPort = await freePort();
    const config = path.join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `receivers:
  flows: { mode: ebpf, ebpf: { cgroup_path: ${monitored}, read_interval: 500ms } }
  dns: { cgroup_path: ${monitored}, read_interval: 200ms }
processors:
  k8s_attributes: {}
  classify: {}
  cost: { provider: aws, region: us-east-1, zone: us-east-1a }
exporters:
  prometheus: { endpoint: 127.0.0.1:${metricsPort} }
extensions:
  k8s_metadata: { standalone: true }
  dns_cache: {}
service:
  extensions: [k8s_metadata, dns_cache]
  pipelines:
    flows: { receivers: [flows], processors: [k8s_attributes, classify, cost], exporters: [prometheus] }
    dns: { receivers: [dns], exporters: [prometheus] }
`,
    );
    const agent = new AgentProcess(['run', '--config', config], {
      env: { KUBECONFIG: path.join(dir, 'none'), KUBERNETES_SERVICE_HOST: '' },
    });
    const prometheus = await PrometheusServer.start(dir, `127.0.0.1:${metricsPort}`);
    try {
      await agent.waitForLog((l) => String(l.msg).startsWith('netmon is running'), 30_000);
      const d = await digIn(monitored, [`@${net.ipA}`, 'shop.test', 'A']);
      expect(d.answers).toEqual([{ name: 'shop.test', ttl: 300, type: 'A', value: SHOP_IP }]);
      await digIn(monitored, [`@${net.ipA}`, 'missing.shop.test', 'A']);
      // The name reaches the cache within the dns receiver's read interval: connect after it.
      await new Promise((done) => setTimeout(done, 600));
      expect(
        await cg.run(
          monitored,
          'curl',
          ['-sS', '-o', '/dev/null', '-w', '%{size_download}', `http://${SHOP_IP}:8080/blob.bin`],
          net.b,
        ),
      ).toBe('300000');

      await prometheus.eventually('sum(netmon_flow_bytes_total{dst_domain="shop.test"})', (res) => {
        expect(Number(res[0]?.value[1])).toBeGreaterThan(300_000);
      });
      // Every byte to that address is under its domain, and it is internet egress, priced.
      const all = await prometheus.query('sum(netmon_flow_bytes_total{traffic_class="internet_egress"})');
      const named = await prometheus.query('sum(netmon_flow_bytes_total{dst_domain="shop.test"})');
      expect(Number(named[0].value[1])).toBe(Number(all[0].value[1]));
      await prometheus.eventually(
        'sum(netmon_flow_cost_usd_total{dst_domain="shop.test",traffic_class="internet_egress"})',
        (res) => expect(Number(res[0]?.value[1])).toBeGreaterThan(0),
      );
      await prometheus.eventually('netmon_dns_lookups_total', (res) => {
        const by = Object.fromEntries(
          res.map((s) => [`${s.metric.dst_domain} ${s.metric.dns_response_code}`, Number(s.value[1])]),
        );
        expect(by).toEqual({ 'shop.test NOERROR': 1, 'missing.shop.test NXDOMAIN': 1 });
      });
      await prometheus.eventually('sum(netmon_dns_lookup_duration_seconds_count)', (res) =>
        expect(Number(res[0]?.value[1])).toBe(2),
      );
    } finally {
      await prometheus.stop();
      agent.signal();
      await agent.exit();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe.runIf(privileged())('dns receiver feeding the devzero and otlp exporters', () => {
  let net: NetnsPair;
  let cg: TestCgroup;

  beforeAll(async () => {
    net = await NetnsPair.create('dx');
    const dnsmasq = startDnsmasq(net);
    await waitForOutput(dnsmasq, /started, version/);
    cg = new TestCgroup('netmon-dnsexport');
  });

  afterAll(async () => {
    try {
      await cg?.destroy();
    } finally {
      await net?.destroy();
    }
  });

  it('sends real lookups as zxporter-netmon does (dns_lookups, ip2domain) and as OTLP counts and latency histograms', async () => {
    const monitored = cg.child('client');
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-dnsx-'));
    const dakr = await DakrStandIn.start();
    const sink = await OtlpSink.start();
    const config = path.join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `receivers:
  dns: { cgroup_path: ${monitored}, read_interval: 200ms }
exporters:
  devzero: { endpoint: "http://127.0.0.1:${dakr.port}", token: t, node_name: node-dns, flush_interval: 1s }
  otlp: { endpoint: "127.0.0.1:${sink.port}", tls: { insecure: true }, interval: 500ms }
extensions:
  health_check: { endpoint: "127.0.0.1:0" }
service:
  extensions: [health_check]
  pipelines:
    dns: { receivers: [dns], exporters: [devzero, otlp] }
`,
    );
    const agent = new AgentProcess(['run', '--config', config], {
      env: { KUBECONFIG: path.join(dir, 'none'), KUBERNETES_SERVICE_HOST: '' },
    });
    try {
      await agent.waitForLog((l) => String(l.msg).startsWith('netmon is running'), 30_000);
      await dig(cg, net, monitored, [`@${net.ipA}`, 'deep.shop.test', 'A']);
      await dig(cg, net, monitored, ['+tcp', `@${net.ip6A}`, 'www.shop.test', 'AAAA']);
      await dig(cg, net, monitored, [`@${net.ipA}`, 'missing.shop.test', 'A']);

      // DevZero: each lookup that resolved an address, with its addresses, and the names of those addresses.
      // domain is the question; ip2domain names an address by its own record's owner, as zxporter-netmon:
      // deep.shop.test reaches it through alias.shop.test, so it is the chain's last name, www.shop.test.
      await dakr.waitFor(() => dakr.traffic.flatMap((c) => c.request.dns_lookups).length >= 2);
      const items = dakr.traffic.flatMap((c) => c.request.dns_lookups);
      expect(
        items
          .map((i) => ({ client: i.client_ip, domain: i.domain, ips: i.resolved_ips }))
          .sort((a, b) => a.domain.localeCompare(b.domain)),
      ).toEqual([
        { client: net.ipB, domain: 'deep.shop.test', ips: [net.ipA] },
        { client: net.ip6B, domain: 'www.shop.test', ips: [net.ip6A] },
      ]);
      const ip2domain = Object.assign({}, ...dakr.traffic.map((c) => c.request.ip2domain));
      expect(ip2domain).toEqual({ [net.ipA]: 'www.shop.test', [net.ip6A]: 'www.shop.test' });

      // OTLP: lookups by question and response code, and their latency.
      await sink.waitFor(() =>
        sink
          .points()
          .some(
            (p) =>
              p.metric === 'netmon.dns.lookup.count' &&
              p.attributes['dns.question.name'] === 'missing.shop.test',
          ),
      );
      const counts = new Map<string, number>();
      let latencies = 0;
      for (const p of sink.points()) {
        if (p.metric === 'netmon.dns.lookup.count') {
          const k = `${p.attributes['dns.question.name']} ${p.attributes['dns.response_code']}`;
          counts.set(k, (counts.get(k) ?? 0) + p.value);
        }
        if (p.metric === 'netmon.dns.lookup.duration') latencies += p.value;
      }
      expect(Object.fromEntries(counts)).toEqual({
        'deep.shop.test NOERROR': 1,
        'www.shop.test NOERROR': 1,
        'missing.shop.test NXDOMAIN': 1,
      });
      expect(latencies).toBe(3);
    } finally {
      agent.signal();
      await agent.exit();
      await dakr.stop();
      await sink.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe.runIf(privileged())('dns receiver under a flood of answers', () => {
  let net: NetnsPair;
  let cg: TestCgroup;

  beforeAll(async () => {
    net = await NetnsPair.create('df');
    cg = new TestCgroup('netmon-dnsflood');
  });

  afterAll(async () => {
    try {
      await cg?.destroy();
    } finally {
      await net?.destroy();
    }
  });

  it('counts every answer the ring had no room for, and blocks nothing: read + lost = answers that arrived', async () => {
    const monitored = cg.child('flooded');
    const sink = new CollectingSink<DnsBatch>();
    const receiver = new DnsReceiver(
      testSettings('receiver', 'dns/flood', { signals: ['dns'] }),
      // The smallest ring (one page), read only at shutdown: most of the flood cannot fit.
      dnsReceiverFactory.config.parse({
        cgroup_path: monitored,
        read_interval: '1h',
        ring_buffer_size: '4KiB',
        // The flood's answers have no query: only while the receiver is younger than query_timeout are
        // they lookups (later they are skipped as unsolicited), so the flood must fit in it.
        query_timeout: '1m',
      }),
      sink,
      undefined,
    );
    receiver.start();
    const count = 3000;
    let received = 0;
    try {
      const listener = cg.spawn(monitored, 'python3', [TRAFFIC, 'udp-sink', net.ipB, '5300'], net.b);
      await waitForOutput(listener, /listening/);
      let out = '';
      listener.stdout?.on('data', (d) => {
        out += d;
      });
      const ended = new Promise((done) => listener.once('exit', done));
      expect(await net.exec(net.a, 'python3', [TRAFFIC, 'dns-flood', net.ipB, '5300', String(count)])).toBe(
        `${count}\n`,
      );
      await ended;
      received = Number(/received (\d+)/.exec(out)?.[1]);
    } finally {
      await receiver.shutdown();
    }
    const c = receiver.counters;
    expect(received).toBeGreaterThan(count * 0.9);
    expect(c.lostPackets).toBeGreaterThan(0);
    expect(c.answerPackets + c.lostPackets).toBe(received);
    // Every answer that was read is a lookup (its query was never seen: no latency).
    expect(c.lookups).toBe(c.answerPackets);
    expect(c.unmatched).toBe(c.answerPackets);
    expect(sink.batches.reduce((n, b) => n + b.length, 0)).toBe(c.answerPackets);
  });
});
