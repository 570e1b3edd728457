// Receiver cost at N active flows, and the map read against a raw batch lookup.
//
// A generator (flowgen.c) in namespace b, inside a cgroup of the bench's own, keeps N distinct UDP flows
// active: S sockets on consecutive source ports each send one datagram to each of 1,000 destination ports
// in namespace a twice per read interval, at most every second (a drops them at prerouting, so no ICMP
// comes back). The real ebpf receiver
// runs in a process of its own (receiver-child.mjs, made by ebpfReceiverFactory, batches dropped) on
// that cgroup, reading every INTERVALS; its read time (swap + drain + merge, from the addon), the JS
// batch building, its CPU and peak RSS, flows per read and losses are reported. Then rawread.c times a
// plain bpf_map_lookup_batch (and lookup_and_delete_batch) over a hash map of the same layout holding N
// entries: the floor for the addon's read.
//
//   make build && .tools/bin/node bench/ebpf/receiver.mjs      # root; FLOWS=10000,100000 INTERVALS=5000,1000
import path from 'node:path';
import {
  buildC,
  fmt,
  HERE,
  main,
  makeCgroup,
  median,
  netnsPair,
  preflight,
  sh,
  start,
  table,
  tempDir,
  writeResults,
} from './lib.mjs';

const FLOWS = (process.env.FLOWS ?? '10000,100000').split(',').map(Number);
const INTERVALS = (process.env.INTERVALS ?? '5000,1000').split(',').map(Number);
/** Measured reads per run: about 20 s of reads at 5 s, 10 s at 1 s. */
const readsFor = (ms) => Math.max(3, Math.round(Math.min(20_000, Math.max(10_000, 4 * ms)) / ms));
const PORTS = 1000;
const RAW_ROUNDS = 7;

preflight('bench/ebpf/receiver.mjs', { tools: ['ip', 'nft', 'cc'], object: true, libbpf: true });
for (const n of FLOWS) {
  if (n % PORTS !== 0 || n / PORTS > 60000) {
    console.error(`FLOWS: ${n} must be a multiple of ${PORTS} (sockets × ${PORTS} destination ports)`);
    process.exit(2);
  }
}

/** max_flows for N flows: room for every flow of an interval with a quarter to spare, a power of two. */
const maxFlowsFor = (n) => 2 ** Math.ceil(Math.log2(n * 1.25));

await main(async () => {
  const dir = tempDir();
  const flowgen = buildC(dir, 'flowgen.c', []);
  const rawread = buildC(dir, 'rawread.c');
  const net = netnsPair();
  net.exec(net.a, 'nft', [
    `add table inet nmbench; add chain inet nmbench pre { type filter hook prerouting priority -300; }; add rule inet nmbench pre udp dport 40000-${40000 + PORTS - 1} drop`,
  ]);
  const cg = makeCgroup('flows');
  const runs = [];

  for (const n of FLOWS) {
    const sockets = n / PORTS;
    const maxFlows = maxFlowsFor(n);
    for (const interval of INTERVALS) {
      const reads = readsFor(interval);
      // Bursts take up to a few hundred ms at 100k flows; sending twice per interval (at most every
      // second) puts at least one whole burst, so every flow, in every read.
      const period = Math.min(1000, interval / 2);
      const gen = start(
        flowgen,
        [net.ipA, '40000', String(PORTS), '20000', String(sockets), String(period)],
        {
          cgroup: cg.path,
          netns: net.b,
        },
      );
      await gen.waitFor(/ready/);
      console.log(
        `${n.toLocaleString('en-US')} flows (${sockets} sockets × ${PORTS} ports, every flow sends each ${period} ms), ` +
          `read every ${interval} ms, max_flows ${maxFlows}: ${reads} reads after a warm-up one …`,
      );
      const proc = start(process.execPath, [path.join(HERE, 'receiver-child.mjs')], {
        env: {
          ...process.env,
          CGROUP: cg.path,
          INTERVAL_MS: String(interval),
          MAX_FLOWS: String(maxFlows),
          READS: String(reads),
        },
      });
      const { code, stdout, stderr } = await proc.done;
      if (code !== 0) throw new Error(`receiver-child.mjs exited with ${code}: ${stderr || stdout}`);
      const r = JSON.parse(stdout.trim().split('\n').at(-1));
      const m = (f) => median(r.reads.map(f));
      const run = {
        flows: n,
        interval_ms: interval,
        max_flows: maxFlows,
        reads: r.reads.length,
        entries_per_read: { min: Math.min(...r.reads.map((x) => x.entries)), median: m((x) => x.entries) },
        rows_per_read: m((x) => x.rows),
        read_ms: { median: m((x) => x.durationMs), max: Math.max(...r.reads.map((x) => x.durationMs)) },
        swap_ms: { median: m((x) => x.swapMs), max: Math.max(...r.reads.map((x) => x.swapMs)) },
        read_wall_ms: m((x) => x.wallMs),
        build_ms: { median: m((x) => x.buildMs), max: Math.max(...r.reads.map((x) => x.buildMs)) },
        cpu_percent: r.cpu_percent,
        cpu_ms_per_read: r.cpu_ms / r.reads.length,
        cpu_user_ms: r.cpu_user_ms,
        cpu_system_ms: r.cpu_system_ms,
        rss_start_mib: r.rss_start_mib,
        rss_peak_mib: r.rss_peak_mib,
        lost_packets: r.reads.at(-1).lostPackets,
        lost_bytes: r.reads.at(-1).lostBytes,
        raw: r,
      };
      console.log(
        `  entries per read ${run.entries_per_read.min}–${Math.max(...r.reads.map((x) => x.entries))}, read ${fmt(run.read_ms.median, 1)} ms ` +
          `(swap ${fmt(run.swap_ms.median, 2)}), batch ${fmt(run.build_ms.median, 1)} ms, CPU ${fmt(run.cpu_percent, 2)}% ` +
          `(${fmt(run.cpu_system_ms / run.reads, 1)} ms in the kernel per read), peak RSS ${fmt(run.rss_peak_mib, 0)} MiB, lost ${run.lost_packets}`,
      );
      // The raw read runs while the generator still sends, as the receiver's reads did: on this 2-CPU
      // kind of machine the same load stretches both alike.
      if (interval === INTERVALS.at(-1)) {
        const raw = JSON.parse(sh(rawread, [String(n), String(RAW_ROUNDS), String(maxFlows)]));
        for (const x of [...runs, run].filter((x) => x.flows === n)) x.rawread = raw;
        console.log(
          `  raw hash map of ${n.toLocaleString('en-US')} entries, generator running: lookup_batch ${fmt(raw.lookup_batch_ms.median, 1)} ms, ` +
            `lookup_and_delete_batch ${fmt(raw.lookup_and_delete_batch_ms.median, 1)} ms (median of ${RAW_ROUNDS}; ` +
            `CPU ${fmt(raw.lookup_batch_ms.cpu_median, 1)} and ${fmt(raw.lookup_and_delete_batch_ms.cpu_median, 1)} ms)`,
        );
      }
      gen.child.kill('SIGTERM');
      const g = await gen.done;
      run.generator = JSON.parse(g.stdout.trim().split('\n').at(-1));
      if (run.generator.failed > 0 || run.generator.late_rounds > 0) {
        console.log(
          `  generator: ${run.generator.failed} datagrams refused, ${run.generator.late_rounds} late rounds`,
        );
      }
      runs.push(run);
    }
  }

  table(
    [
      'flows',
      'read every',
      'entries/read (min)',
      'read (swap+drain+merge)',
      'of which swap',
      'JS batch',
      'CPU',
      'CPU per read (kernel)',
      'RSS start → peak',
      'lost',
    ],
    runs.map((r) => [
      r.flows.toLocaleString('en-US'),
      `${r.interval_ms / 1000} s`,
      `${r.entries_per_read.min.toLocaleString('en-US')}`,
      `${fmt(r.read_ms.median, 1)} ms (max ${fmt(r.read_ms.max, 1)})`,
      `${fmt(r.swap_ms.median, 2)} ms`,
      `${fmt(r.build_ms.median, 1)} ms (max ${fmt(r.build_ms.max, 1)})`,
      `${fmt(r.cpu_percent, 2)}%`,
      `${fmt(r.cpu_ms_per_read, 1)} ms (${fmt(r.cpu_system_ms / r.reads, 1)})`,
      `${fmt(r.rss_start_mib, 0)} → ${fmt(r.rss_peak_mib, 0)} MiB`,
      String(r.lost_packets),
    ]),
  );
  console.log('');
  // Against the run the raw reads shared the generator's load with.
  table(
    [
      'flows',
      'addon read (median)',
      'raw lookup_batch',
      'raw lookup_and_delete_batch',
      'addon / lookup_batch',
      'addon / lookup_and_delete',
    ],
    runs
      .filter((r) => r.interval_ms === INTERVALS.at(-1))
      .map((r) => {
        const raw = r.rawread;
        return [
          r.flows.toLocaleString('en-US'),
          `${fmt(r.read_ms.median, 1)} ms`,
          `${fmt(raw.lookup_batch_ms.median, 1)} ms`,
          `${fmt(raw.lookup_and_delete_batch_ms.median, 1)} ms`,
          `${fmt(r.read_ms.median / raw.lookup_batch_ms.median, 2)}×`,
          `${fmt(r.read_ms.median / raw.lookup_and_delete_batch_ms.median, 2)}×`,
        ];
      }),
  );
  writeResults('receiver', {
    command: `FLOWS=${FLOWS.join(',')} INTERVALS=${INTERVALS.join(',')} node bench/ebpf/receiver.mjs`,
    ports: PORTS,
    runs,
  });
});
