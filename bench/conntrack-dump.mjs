// Conntrack dump: netmon's receiver path (addon dump → FlowBatch) against `conntrack -L > /dev/null` and
// a raw libmnl dump (bench/mnldump.c), on one table of ENTRIES entries made with `conntrack -R`.
// Root only. Creates the namespace nmbench, raises the global nf_conntrack_max for the run and puts
// everything back afterwards.
//   make build && ENTRIES=1000000 .tools/bin/node bench/conntrack-dump.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openConntrack } from '@netmon/native';
import { conntrackBatch } from '../packages/receivers/dist/conntrack/receiver.js';

const ENTRIES = Number(process.env.ENTRIES ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const NS = 'nmbench';
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { maxBuffer: 1 << 30, ...opts });
const inNs = (cmd, args, opts) => sh('ip', ['netns', 'exec', NS, cmd, ...args], opts);

if (process.getuid() !== 0) {
  console.error('bench/conntrack-dump.mjs needs root (a network namespace and a conntrack table)');
  process.exit(1);
}
const dir = mkdtempSync(path.join(tmpdir(), 'netmon-bench-'));
const maxBefore = sh('sysctl', ['-n', 'net.netfilter.nf_conntrack_max']).toString().trim();
try {
  sh('ip', ['netns', 'add', NS]);
  sh('sysctl', ['-qw', `net.netfilter.nf_conntrack_max=${Math.max(ENTRIES * 2, Number(maxBefore))}`]);
  // As on a node the agent runs on: entries carry counters and a start time, so their parsing is timed too.
  inNs('sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1', 'net.netfilter.nf_conntrack_timestamp=1']);
  const mnldump = path.join(dir, 'mnldump');
  sh('gcc', ['-O2', '-o', mnldump, path.join(import.meta.dirname, 'mnldump.c'), '-lmnl']);

  const lines = [];
  for (let i = 0; i < ENTRIES; i++) {
    const a = 1 + (i >> 16);
    lines.push(
      `-I -t 3600 -s 10.${a}.${(i >> 8) & 255}.${i & 255} -d 10.200.0.1 -p udp --sport ${1024 + (i % 60000)} --dport 53`,
    );
  }
  writeFileSync(path.join(dir, 'table.txt'), `${lines.join('\n')}\n`);
  let t = performance.now();
  inNs('conntrack', ['-R', path.join(dir, 'table.txt')], { stdio: 'ignore' });
  console.log(
    `table: ${ENTRIES} entries made with conntrack -R in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );

  // The two tools run as processes: their start (nsenter, exec, loading libraries) is measured alone and
  // taken off, so all three figures are the dump itself.
  const wall = (args) => {
    const t0 = performance.now();
    const r = spawnSync('nsenter', [`--net=/run/netns/${NS}`, ...args], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited with ${r.status}`);
    return { ms: performance.now() - t0, stdout: r.stdout.toString() };
  };
  const startup = (args) => Math.min(...[0, 1, 2].map(() => wall(args).ms));
  const cliStart = startup(['conntrack', '--version']);
  const mnlStart = startup([mnldump, '--help']);

  const handle = openConntrack(`/run/netns/${NS}`);
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    t = performance.now();
    const r = await handle.dump(0, null);
    const batch = conntrackBatch(r, true, 'conntrack');
    const ours = performance.now() - t;
    if (batch.length !== ENTRIES) throw new Error(`dumped ${batch.length} entries, expected ${ENTRIES}`);

    const cli = wall(['sh', '-c', 'conntrack -L > /dev/null 2>&1']).ms - cliStart;
    const m = wall([mnldump]);
    const out = m.stdout.trim().split(' ');
    if (Number(out[0]) !== ENTRIES) throw new Error(`mnldump saw ${out[0]} entries`);
    const mnl = m.ms - mnlStart;
    rounds.push({ ours, cli, mnl, native: r.durationMs });
    console.log(
      `round ${round + 1}: netmon ${ours.toFixed(0)} ms (kernel read + parse ${r.durationMs.toFixed(0)} ms), ` +
        `conntrack -L ${cli.toFixed(0)} ms, raw libmnl ${mnl.toFixed(0)} ms (${out[1]} ms by its own clock) → ` +
        `${(cli / ours).toFixed(2)}× faster than conntrack -L, ${(ours / mnl).toFixed(2)}× the raw dump`,
    );
  }
  handle.close();
  const median = (f) => rounds.map(f).sort((a, b) => a - b)[Math.floor(rounds.length / 2)];
  console.log(
    `median of ${ROUNDS} rounds (each ratio from one round on the same table), ${ENTRIES} entries: ` +
      `netmon ${median((r) => r.ours).toFixed(0)} ms, ${median((r) => r.cli / r.ours).toFixed(2)}× faster than ` +
      `conntrack -L, ${median((r) => r.ours / r.mnl).toFixed(2)}× the raw libmnl dump; ` +
      `RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB (startup taken off: conntrack ${cliStart.toFixed(0)} ms, mnldump ${mnlStart.toFixed(0)} ms)`,
  );
} finally {
  spawnSync('ip', ['netns', 'del', NS]);
  spawnSync('sysctl', ['-qw', `net.netfilter.nf_conntrack_max=${maxBefore}`]);
  rmSync(dir, { recursive: true, force: true });
}
