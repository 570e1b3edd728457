// Throughput cost of the receiver's BPF programs: iperf3 TCP from namespace b (the client, inside a cgroup
// of the bench's own) to namespace a, without the programs, with them attached to the client's cgroup,
// and with them attached at the cgroup2 root (every socket of the host), each read every second as the
// receiver reads them. The three run alternately, ROUNDS times; each round's ratios come from that round.
// Then one INTERLEAVE-second iperf3 run switches between the three every two seconds and compares their
// per-second throughput (see interleaved()).
// Last, with kernel.bpf_stats_enabled on (put back afterwards; the stats cost a little, so these runs are
// not in the ratios), what the programs cost per packet in this traffic: the receiver's, its program with
// the rx counters on a cache line of their own, and the per-CPU variant of buffers.mjs.
//
//   make build && .tools/bin/node bench/ebpf/throughput.mjs   # root; ROUNDS=3 DURATION=10 INTERLEAVE=30
//                                                             # PROFILE_ROUNDS=2 PROFILE_SECONDS=5
//   IPERF_ARGS="-l 128 -N" …                                      # small writes: many small packets
import { performance } from 'node:perf_hooks';
import { attachCgroupFlows } from '@netmon/native';
import {
  buildBpf,
  buildC,
  buildPaddedBpf,
  cgroup2Root,
  fmt,
  main,
  makeCgroup,
  median,
  netnsPair,
  objectCopy,
  onCleanup,
  preflight,
  sh,
  start,
  table,
  tempDir,
  writeResults,
} from './lib.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const DURATION = Number(process.env.DURATION ?? 10);
const INTERLEAVE = Number(process.env.INTERLEAVE ?? 30);
const PROFILE_ROUNDS = Number(process.env.PROFILE_ROUNDS ?? 2);
const PROFILE_SECONDS = Number(process.env.PROFILE_SECONDS ?? 5);
const IPERF_ARGS = (process.env.IPERF_ARGS ?? '').split(' ').filter(Boolean);
const MAX_FLOWS = 65536;

preflight('bench/ebpf/throughput.mjs', {
  tools: ['iperf3', 'ip', 'bpftool', 'clang', 'llvm-strip', 'cc'],
  object: true,
  libbpf: true,
});

/** Our programs among those attached to `cgroup`, by id (others' programs may be attached there too). */
function attachedIds(cgroup) {
  const out = sh('bpftool', ['-j', 'cgroup', 'show', cgroup]).trim();
  return new Set((out ? JSON.parse(out) : []).map((p) => p.id));
}

/** Runs and run time (kernel.bpf_stats_enabled) of our programs: all, and the egress one alone. */
function progStats(ids) {
  const s = { runs: 0, ns: 0, egressRuns: 0 };
  for (const id of ids) {
    const p = JSON.parse(sh('bpftool', ['-j', 'prog', 'show', 'id', String(id)]));
    s.runs += p.run_cnt ?? 0;
    s.ns += p.run_time_ns ?? 0;
    if (p.name === 'count_egress') s.egressRuns += p.run_cnt ?? 0;
  }
  return s;
}

await main(async () => {
  const dir = tempDir();
  const object = objectCopy(dir);
  const percpuObject = buildBpf(dir, 'percpu.bpf.c');
  const paddedObject = buildPaddedBpf(dir);
  const attachBin = buildC(dir, 'attach.c');
  const net = netnsPair();
  const client = makeCgroup('iperf');
  const root = cgroup2Root();
  const server = start('iperf3', ['-s', '-B', net.ipA, '-p', '5201', '--forceflush'], { netns: net.a });
  await server.waitFor(/Server listening/);

  /** One iperf3 run; with `attach`, the programs on that cgroup, read every second meanwhile. */
  async function run(attach, { stats = false, warmup = false, ids, seconds = DURATION } = {}) {
    let handle;
    let closeHandle;
    let timer;
    let reading;
    let ours = new Set(ids ?? []);
    const reads = [];
    if (attach) {
      const before = attachedIds(attach);
      handle = attachCgroupFlows({ cgroupPath: attach, maxFlows: MAX_FLOWS, objectPath: object });
      closeHandle = onCleanup(() => handle.close());
      ours = new Set([...attachedIds(attach)].filter((id) => !before.has(id)));
      timer = setInterval(() => {
        if (reading) return;
        reading = handle.read().then((r) => {
          reads.push(r);
          reading = undefined;
        });
      }, 1000);
    }
    const statsBefore = stats ? progStats(ours) : undefined;
    const t0 = performance.now();
    const iperf = start(
      'iperf3',
      ['-c', net.ipA, '-p', '5201', '-t', String(warmup ? 2 : seconds), '-J', ...IPERF_ARGS],
      {
        cgroup: client.path,
        netns: net.b,
      },
    );
    const { code, stdout, stderr } = await iperf.done;
    const wall = (performance.now() - t0) / 1000;
    const statsAfter = stats ? progStats(ours) : undefined;
    if (handle) {
      clearInterval(timer);
      await reading;
      reads.push(await handle.read());
      closeHandle();
    }
    if (code !== 0) throw new Error(`iperf3 exited with ${code}: ${stderr || stdout}`);
    const j = JSON.parse(stdout);
    const result = {
      attach: attach ?? 'none',
      gbps: j.end.sum_received.bits_per_second / 1e9,
      retransmits: j.end.sum_sent.retransmits ?? 0,
      sender_cpu: j.end.cpu_utilization_percent?.host_total,
      reads: reads.length,
      read_ms_median: reads.length ? median(reads.map((r) => r.durationMs)) : undefined,
      flows_per_read_max: reads.length ? Math.max(...reads.map((r) => r.entries)) : undefined,
      lost_packets: reads.length ? Math.max(...reads.map((r) => r.lostPackets)) : undefined,
    };
    if (stats) {
      const runs = statsAfter.runs - statsBefore.runs;
      const ns = statsAfter.ns - statsBefore.ns;
      const egress = statsAfter.egressRuns - statsBefore.egressRuns;
      Object.assign(result, {
        program_runs: runs,
        program_runs_per_s: runs / wall,
        program_ns_per_run: runs ? ns / runs : undefined,
        program_cpu_percent: (ns / 1e9 / wall) * 100,
        egress_runs: egress,
        bytes_per_egress_run: egress ? j.end.sum_sent.bytes / egress : undefined,
      });
    }
    return result;
  }

  /**
   * One iperf3 run of INTERLEAVE seconds, reporting every second; the configuration changes every two
   * seconds (none → cgroup → root → none …) and only the second of each pair counts, so the attach
   * (loading and verifying the programs) never falls in a counted second. Changes of the machine's other
   * load then hit all three alike, which separate 10 s runs cannot promise on a shared VM.
   */
  async function interleaved(seconds) {
    const order = configs.map(([name]) => name);
    const where = Object.fromEntries(configs);
    const samples = Object.fromEntries(order.map((n) => [n, []]));
    const attachMs = [];
    let handle;
    let reading;
    let current = 'none';
    const setConfig = (name) => {
      if (name === current) return;
      handle?.close();
      handle = undefined;
      if (where[name]) {
        const t = performance.now();
        handle = attachCgroupFlows({ cgroupPath: where[name], maxFlows: MAX_FLOWS, objectPath: object });
        attachMs.push(performance.now() - t);
      }
      current = name;
    };
    const undo = onCleanup(() => handle?.close());
    const timer = setInterval(() => {
      if (reading || !handle) return;
      const h = handle;
      reading = h
        .read()
        .catch(() => {})
        .finally(() => {
          reading = undefined;
        });
    }, 1000);
    const iperf = start(
      'iperf3',
      [
        '-c',
        net.ipA,
        '-p',
        '5201',
        '-t',
        String(seconds),
        '-i',
        '1',
        '-f',
        'm',
        '--forceflush',
        ...IPERF_ARGS,
      ],
      { cgroup: client.path, netns: net.b },
    );
    let seen = 0;
    let buffered = '';
    iperf.child.stdout.on('data', (d) => {
      buffered += d;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        // "[  5]   3.00-4.00   sec  2.10 GBytes  18032 Mbits/sec  123   1.20 MBytes" (not the summary lines)
        const m = /\]\s+[\d.]+-[\d.]+\s+sec\s+[\d.]+ \w+\s+([\d.]+) Mbits\/sec/.exec(line);
        if (!m || /sender|receiver/.test(line)) continue;
        if (seen % 2 === 1) samples[current].push(Number(m[1]) / 1000);
        seen++;
        setConfig(order[Math.floor(seen / 2) % order.length]);
      }
    });
    const { code, stderr } = await iperf.done;
    clearInterval(timer);
    await reading;
    undo();
    if (code !== 0) throw new Error(`iperf3 exited with ${code}: ${stderr}`);
    return { samples, attach_ms: median(attachMs) };
  }

  const configs = [
    ['none', undefined],
    ['cgroup', client.path],
    ['root', root],
  ];
  console.log(
    `iperf3 TCP ${net.ipB} → ${net.ipA} over a veth pair, ${DURATION} s per run${IPERF_ARGS.length ? ` (${IPERF_ARGS.join(' ')})` : ''}, ` +
      `${ROUNDS} rounds of: no programs | attached to the client's cgroup | attached at the cgroup2 root (${root}); read every 1 s\n`,
  );
  // A first, unmeasured run: the first connection after the namespaces appear is slower than the rest.
  await run(undefined, { warmup: true });
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const round = {};
    // Each round starts with another configuration, so none always follows the same one.
    for (let k = 0; k < configs.length; k++) {
      const [name, cgroup] = configs[(k + r) % configs.length];
      round[name] = await run(cgroup);
      const x = round[name];
      console.log(
        `round ${r + 1} ${name.padEnd(6)} ${fmt(x.gbps, 2).padStart(7)} Gbit/s  retransmits ${x.retransmits}` +
          (x.reads
            ? `  reads ${x.reads}, median ${fmt(x.read_ms_median, 2)} ms, ≤ ${x.flows_per_read_max} entries, lost ${x.lost_packets}`
            : ''),
      );
    }
    round.ratio_cgroup = round.cgroup.gbps / round.none.gbps;
    round.ratio_root = round.root.gbps / round.none.gbps;
    // Throughput per unit of the sender's CPU (iperf3's own figure): when other work takes the CPU away
    // from iperf3, throughput and its CPU fall together, so this moves less with the machine's load.
    const perCpu = (x) => x.gbps / (x.sender_cpu / 100);
    round.per_cpu_ratio_cgroup = perCpu(round.cgroup) / perCpu(round.none);
    round.per_cpu_ratio_root = perCpu(round.root) / perCpu(round.none);
    rounds.push(round);
  }

  let mixed;
  if (INTERLEAVE > 0) {
    console.log(
      `\ninterleaved: one ${INTERLEAVE} s iperf3 run, the configuration changed every 2 s, the second of each pair counted …`,
    );
    mixed = await interleaved(INTERLEAVE);
    mixed.median_gbps = Object.fromEntries(Object.entries(mixed.samples).map(([k, v]) => [k, median(v)]));
    mixed.ratio_cgroup = mixed.median_gbps.cgroup / mixed.median_gbps.none;
    mixed.ratio_root = mixed.median_gbps.root / mixed.median_gbps.none;
  }

  // What the programs cost per packet in this traffic (kernel.bpf_stats_enabled), the receiver's against
  // two bench variants attached the same way by attach.c: its program with the rx counters on another
  // cache line than the tx ones, and the per-CPU variant of buffers.mjs. Nothing reads the variants'
  // maps: a read changes what a read costs, not what a packet does. PROFILE_ROUNDS alternating rounds.
  const previous = sh('sysctl', ['-n', 'kernel.bpf_stats_enabled']).trim();
  const restore = onCleanup(() => sh('sysctl', ['-qw', `kernel.bpf_stats_enabled=${previous}`]));
  sh('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
  const variants = { receiver: undefined, padded: paddedObject, percpu: percpuObject };
  const profiled = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 0; r < PROFILE_ROUNDS; r++) {
    for (const [name, object] of Object.entries(variants)) {
      if (!object) {
        profiled[name].push(await run(client.path, { stats: true, seconds: PROFILE_SECONDS }));
        continue;
      }
      const holder = start(attachBin, [object, client.path, String(MAX_FLOWS)]);
      await holder.waitFor(/attached \d+ \d+/);
      const ids = /attached (\d+) (\d+)/.exec(holder.output()).slice(1).map(Number);
      profiled[name].push(await run(undefined, { stats: true, ids, seconds: PROFILE_SECONDS }));
      holder.kill();
      await holder.done;
    }
  }
  restore();
  const profile = Object.fromEntries(
    Object.entries(profiled).map(([name, list]) => [
      name,
      {
        runs: list,
        gbps: median(list.map((x) => x.gbps)),
        program_runs_per_s: median(list.map((x) => x.program_runs_per_s)),
        program_ns_per_run: median(list.map((x) => x.program_ns_per_run)),
        program_cpu_percent: median(list.map((x) => x.program_cpu_percent)),
        bytes_per_egress_run: median(list.map((x) => x.bytes_per_egress_run)),
      },
    ]),
  );

  console.log('');
  table(
    [
      '',
      'no programs',
      "client's cgroup",
      'cgroup2 root',
      'cgroup / none',
      'root / none',
      'per sender CPU: cgroup / none',
      'root / none',
    ],
    [
      ...rounds.map((x, i) => [
        `round ${i + 1} (Gbit/s, sender CPU)`,
        `${fmt(x.none.gbps, 2)} (${fmt(x.none.sender_cpu, 0)}%)`,
        `${fmt(x.cgroup.gbps, 2)} (${fmt(x.cgroup.sender_cpu, 0)}%)`,
        `${fmt(x.root.gbps, 2)} (${fmt(x.root.sender_cpu, 0)}%)`,
        `${fmt(x.ratio_cgroup * 100, 1)}%`,
        `${fmt(x.ratio_root * 100, 1)}%`,
        `${fmt(x.per_cpu_ratio_cgroup * 100, 1)}%`,
        `${fmt(x.per_cpu_ratio_root * 100, 1)}%`,
      ]),
      [
        'median',
        fmt(median(rounds.map((x) => x.none.gbps)), 2),
        fmt(median(rounds.map((x) => x.cgroup.gbps)), 2),
        fmt(median(rounds.map((x) => x.root.gbps)), 2),
        `${fmt(median(rounds.map((x) => x.ratio_cgroup)) * 100, 1)}%`,
        `${fmt(median(rounds.map((x) => x.ratio_root)) * 100, 1)}%`,
        `${fmt(median(rounds.map((x) => x.per_cpu_ratio_cgroup)) * 100, 1)}%`,
        `${fmt(median(rounds.map((x) => x.per_cpu_ratio_root)) * 100, 1)}%`,
      ],
    ],
  );
  if (mixed) {
    console.log(
      `\ninterleaved (${mixed.samples.none.length} counted seconds each; attach ${fmt(mixed.attach_ms, 0)} ms): median ` +
        `${fmt(mixed.median_gbps.none, 2)} / ${fmt(mixed.median_gbps.cgroup, 2)} / ${fmt(mixed.median_gbps.root, 2)} Gbit/s → ` +
        `cgroup ${fmt(mixed.ratio_cgroup * 100, 1)}%, root ${fmt(mixed.ratio_root * 100, 1)}% of no programs`,
    );
  }
  console.log(
    `\nper packet in this traffic, kernel.bpf_stats_enabled, programs on the client's cgroup (medians of ${PROFILE_ROUNDS} runs of ${PROFILE_SECONDS} s):\n`,
  );
  const label = {
    receiver: 'receiver (double buffer)',
    padded: 'receiver, rx counters on another cache line',
    percpu: 'per-CPU variant',
  };
  table(
    ['', 'Gbit/s', 'program runs/s', 'ns per run', 'CPU (one = 100%)', 'bytes sent per egress run'],
    Object.entries(profile).map(([name, x]) => [
      label[name],
      fmt(x.gbps, 2),
      fmt(x.program_runs_per_s, 0),
      fmt(x.program_ns_per_run, 0),
      `${fmt(x.program_cpu_percent, 2)}%`,
      fmt(x.bytes_per_egress_run, 0),
    ]),
  );
  writeResults(IPERF_ARGS.length ? 'throughput-small' : 'throughput', {
    command: `ROUNDS=${ROUNDS} DURATION=${DURATION}${IPERF_ARGS.length ? ` IPERF_ARGS="${IPERF_ARGS.join(' ')}"` : ''} node bench/ebpf/throughput.mjs`,
    seconds: DURATION,
    iperf_args: IPERF_ARGS,
    cgroup2_root: root,
    rounds,
    median: {
      none_gbps: median(rounds.map((x) => x.none.gbps)),
      cgroup_gbps: median(rounds.map((x) => x.cgroup.gbps)),
      root_gbps: median(rounds.map((x) => x.root.gbps)),
      ratio_cgroup: median(rounds.map((x) => x.ratio_cgroup)),
      ratio_root: median(rounds.map((x) => x.ratio_root)),
      per_cpu_ratio_cgroup: median(rounds.map((x) => x.per_cpu_ratio_cgroup)),
      per_cpu_ratio_root: median(rounds.map((x) => x.per_cpu_ratio_root)),
    },
    interleaved: mixed,
    profile,
  });
});
