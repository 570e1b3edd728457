// What the eBPF benches share: the root and tool checks, a temporary folder for what they compile, network
// namespaces and cgroups of their own, processes started inside them, and a cleanup that removes all of
// it — on success, on an error, and on Ctrl-C or SIGTERM. Every cleanup step is synchronous, so it can
// run from a signal handler.
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanup, installSignalHandlers, onCleanup, sh } from '../cleanup.mjs';

export const HERE = import.meta.dirname;
export const ROOT = path.resolve(HERE, '..', '..');
export const BPF_INCLUDE = path.join(ROOT, 'native', 'bpf');
export const FLOWS_OBJECT = path.join(ROOT, 'native', 'build', 'Release', 'flows.bpf.o');

// ---------------------------------------------------------------------------------------------------
// Cleanup (bench/cleanup.mjs): every eBPF bench cleans up on a signal, so importing this installs it.

export { cleanup, onCleanup, sh };

installSignalHandlers();

/**
 * Runs a bench's main function: cleanup afterwards whatever happens, a non-zero exit on failure (the
 * receiver's BPF links and the C programs' maps are owned by processes, so nothing is pinned or left
 * attached once they are gone).
 */
export async function main(fn) {
  try {
    await fn();
  } catch (err) {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  } finally {
    cleanup();
  }
}

// ---------------------------------------------------------------------------------------------------
// Preconditions

const TOOL_PACKAGES = {
  iperf3: 'iperf3',
  clang: 'clang',
  'llvm-strip': 'llvm',
  cc: 'gcc',
  bpftool: 'bpftool',
  nft: 'nftables',
  ip: 'iproute2',
};

/** Exits with what to install when the bench lacks root, a tool, libbpf's headers or the built object. */
export function preflight(bench, { tools = [], object = false, libbpf = false } = {}) {
  const problems = [];
  if (process.platform !== 'linux') problems.push(`${bench} needs Linux`);
  else if (process.getuid() !== 0)
    problems.push(`${bench} needs root (network namespaces, cgroups, BPF programs)`);
  const missing = tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    problems.push(`missing ${missing.join(', ')}: apt-get install ${pkgs.join(' ')}`);
  }
  if (libbpf && !existsSync('/usr/include/bpf/bpf.h')) {
    problems.push('missing libbpf headers: apt-get install libbpf-dev');
  }
  if (object && !existsSync(FLOWS_OBJECT)) {
    problems.push(`the receiver's BPF object is not built (${FLOWS_OBJECT}): run 'make build'`);
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`${bench}: ${p}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------
// Building

/** A temporary folder for compiled helpers, removed at cleanup. */
export function tempDir() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'netmon-bench-ebpf-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A copy of the receiver's BPF object in `dir`: the benches load their copy, so a rebuild of native/ while
 * they run does not pull the object away under them.
 */
export function objectCopy(dir) {
  const out = path.join(dir, 'flows.bpf.o');
  copyFileSync(FLOWS_OBJECT, out);
  return out;
}

/** Compiles one C file of bench/ebpf against libbpf and the receiver's flows.h. */
export function buildC(dir, source, libs = ['-lbpf']) {
  const out = path.join(dir, path.basename(source, '.c'));
  sh('cc', ['-O2', '-Wall', '-Wextra', '-I', BPF_INCLUDE, '-o', out, path.join(HERE, source), ...libs]);
  return out;
}

/**
 * Compiles a BPF C file (of bench/ebpf, or an absolute path) the way native/binding.gyp compiles the
 * receiver's program, into `dir` under `name` (default: the source's name).
 */
export function buildBpf(dir, source, name = path.basename(source, '.c')) {
  const out = path.join(dir, `${name}.o`);
  const multiarch = sh('gcc', ['-dumpmachine']).trim();
  sh('clang', [
    '-target',
    'bpf',
    '-mcpu=v3',
    '-O2',
    '-g',
    '-Wall',
    '-Werror',
    '-I',
    BPF_INCLUDE,
    `-I/usr/include/${multiarch}`,
    '-c',
    path.resolve(HERE, source),
    '-o',
    out,
  ]);
  sh('llvm-strip', ['-g', out]);
  return out;
}

/**
 * The receiver's program with its value's rx counters moved 64 bytes away from the tx ones, so egress
 * on one CPU and ingress on another no longer take turns owning one cache line: native/bpf/flows.bpf.c
 * and flows.h copied into `dir`, one line added. Bench only (the addon's reads expect the real layout).
 */
export function buildPaddedBpf(dir) {
  const copy = path.join(dir, 'padded');
  mkdirSync(copy, { recursive: true });
  const header = readFileSync(path.join(BPF_INCLUDE, 'flows.h'), 'utf8');
  const padded = header.replace(
    /(__u64 tx_packets;[^\n]*\n)/,
    '$1  __u8 rx_line[64];  // bench: the rx counters on another cache line\n',
  );
  if (padded === header) throw new Error('native/bpf/flows.h has no tx_packets field to pad after');
  writeFileSync(path.join(copy, 'flows.h'), padded);
  copyFileSync(path.join(BPF_INCLUDE, 'flows.bpf.c'), path.join(copy, 'flows.bpf.c'));
  return buildBpf(dir, path.join(copy, 'flows.bpf.c'), 'flows-padded');
}

// ---------------------------------------------------------------------------------------------------
// Namespaces, cgroups, processes

/** The cgroup2 mount point from /proc/self/mountinfo (/sys/fs/cgroup, or …/unified on a hybrid host). */
export function cgroup2Root() {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0 || !line.slice(dash + 3).startsWith('cgroup2 ')) continue;
    const f = line.slice(0, dash).split(' ');
    if (f[3] === '/')
      return f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
  }
  throw new Error('no cgroup2 filesystem is mounted (none in /proc/self/mountinfo)');
}

/**
 * Two namespaces joined by a veth pair: `a` (10.231.0.1, the servers) and `b` (10.231.0.2, the
 * clients). Every process left in them is killed and both are deleted at cleanup.
 */
export function netnsPair() {
  const id = process.pid.toString(36);
  const a = `nmbench-a-${id}`;
  const b = `nmbench-b-${id}`;
  for (const ns of [a, b]) {
    sh('ip', ['netns', 'add', ns]);
    onCleanup(() => {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      }
      spawnSync('ip', ['netns', 'del', ns]);
    });
  }
  const va = `nmba${id}`.slice(0, 15);
  const vb = `nmbb${id}`.slice(0, 15);
  sh('ip', ['link', 'add', va, 'netns', a, 'type', 'veth', 'peer', 'name', vb, 'netns', b]);
  for (const [ns, dev, ip] of [
    [a, va, '10.231.0.1'],
    [b, vb, '10.231.0.2'],
  ]) {
    sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${ip}/24`, 'dev', dev]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', dev, 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  }
  return {
    a,
    b,
    ipA: '10.231.0.1',
    ipB: '10.231.0.2',
    exec: (ns, cmd, args) => sh('ip', ['netns', 'exec', ns, cmd, ...args]),
  };
}

/** A cgroup of the bench's own under the cgroup2 root; its processes are killed and it is removed at cleanup. */
export function makeCgroup(name) {
  const dir = path.join(cgroup2Root(), `netmon-bench-${name}-${process.pid}`);
  mkdirSync(dir);
  onCleanup(() => {
    for (let i = 0; ; i++) {
      for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      }
      try {
        rmdirSync(dir);
        return;
      } catch (err) {
        // A killed process leaves its cgroup a moment later.
        if (err.code !== 'EBUSY' || i > 100) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  });
  return { path: dir, id: Number(statSync(dir, { bigint: true }).ino) };
}

/**
 * Starts `cmd` inside a cgroup (joined before exec, so its sockets belong there) and/or a network
 * namespace. Killed at cleanup if still running. `done` resolves with its exit code and output.
 */
export function start(cmd, args, { cgroup, netns, env } = {}) {
  let argv = [cmd, ...args];
  if (netns) argv = ['ip', 'netns', 'exec', netns, ...argv];
  if (cgroup) argv = ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...argv];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const kill = onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    done,
    kill,
    output: () => stdout + stderr,
    /** Resolves when the output so far matches `re`; rejects when the process ends first or after `ms`. */
    waitFor(re, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`${cmd}: no ${re} within ${ms} ms; output: ${stdout}${stderr}`));
        }, ms);
        const check = () => {
          if (re.test(stdout + stderr)) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout.on('data', check);
        child.stderr.on('data', check);
        child.on('close', (code) => {
          clearTimeout(timer);
          reject(new Error(`${cmd} exited (${code}) before printing ${re}: ${stdout}${stderr}`));
        });
        check();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Reporting

/** Busy and idle CPU time of the whole machine so far (/proc/stat's first line, in clock ticks). */
function cpuTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return { idle, total: f.reduce((a, b) => a + b, 0) };
}
const ticksAtStart = cpuTicks();

/**
 * The machine, and how busy it was during the run: the share of all CPUs' time that was not idle
 * (this bench's work and everybody else's) — other work on a shared machine moves the figures.
 */
export function machine() {
  const now = cpuTicks();
  const busy = 1 - (now.idle - ticksAtStart.idle) / (now.total - ticksAtStart.total);
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    load_average: os.loadavg().map((x) => Number(x.toFixed(2))),
    busy_percent_during_run: Number((busy * 100).toFixed(1)),
    date: new Date().toISOString(),
  };
}

export function median(values) {
  const v = [...values].sort((x, y) => x - y);
  if (v.length === 0) return Number.NaN;
  return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/** Prints rows (arrays of cells) as an aligned table with a header line. */
export function table(header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

export const fmt = (x, digits = 1) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';

/**
 * Writes the bench's figures as JSON: to $JSON_OUT when set, else <tmpdir>/netmon-bench-ebpf/<name>.json
 * (outside the repository, where `biome check .` would lint it).
 */
export function writeResults(name, data) {
  const file = process.env.JSON_OUT ?? path.join(os.tmpdir(), 'netmon-bench-ebpf', `${name}.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  const m = machine();
  writeFileSync(file, `${JSON.stringify({ bench: name, machine: m, ...data }, null, 2)}\n`);
  console.log(
    `\nmachine: ${m.cpus} × ${m.cpu_model}, kernel ${m.kernel}; CPUs busy ${m.busy_percent_during_run}% of the run (all work), load ${m.load_average.join(' ')}`,
  );
  console.log(`JSON: ${file}`);
}
