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
import { conntrackBatch } from '@netmon/receivers';

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

  const handle = openConntrack(`/run/netns/${NS}`);
  const best = { ours: Infinity, native: Infinity, cli: Infinity, mnl: Infinity };
  for (let round = 0; round < ROUNDS; round++) {
    t = performance.now();
    const r = await handle.dump(0, null);
    const batch = conntrackBatch(r, true, 'conntrack');
    const ours = performance.now() - t;
    if (batch.length !== ENTRIES) throw new Error(`dumped ${batch.length} entries, expected ${ENTRIES}`);
    best.ours = Math.min(best.ours, ours);
    best.native = Math.min(best.native, r.durationMs);

    t = performance.now();
    inNs('sh', ['-c', 'conntrack -L > /dev/null 2>&1']);
    best.cli = Math.min(best.cli, performance.now() - t);

    const out = spawnSync('nsenter', [`--net=/run/netns/${NS}`, mnldump])
      .stdout.toString()
      .trim()
      .split(' ');
    if (Number(out[0]) !== ENTRIES) throw new Error(`mnldump saw ${out[0]} entries`);
    best.mnl = Math.min(best.mnl, Number(out[1]));
    console.log(
      `round ${round + 1}: netmon ${ours.toFixed(0)} ms (kernel read + parse ${r.durationMs.toFixed(0)} ms), ` +
        `conntrack -L ${best.cli.toFixed(0)} ms, raw libmnl ${out[1]} ms`,
    );
  }
  handle.close();
  console.log(
    `best of ${ROUNDS}, ${ENTRIES} entries: netmon ${best.ours.toFixed(0)} ms, conntrack -L ${best.cli.toFixed(0)} ms, ` +
      `raw libmnl ${best.mnl.toFixed(0)} ms → ${(best.cli / best.ours).toFixed(2)}× faster than conntrack -L, ` +
      `${(best.ours / best.mnl).toFixed(2)}× the raw libmnl dump; RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
} finally {
  spawnSync('ip', ['netns', 'del', NS]);
  spawnSync('sysctl', ['-qw', `net.netfilter.nf_conntrack_max=${maxBefore}`]);
  rmSync(dir, { recursive: true, force: true });
}
