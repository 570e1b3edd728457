// What run.mjs needs from the system: synchronous cleanup steps (they must also run from a signal
// handler), commands, child processes with their last output lines, and /proc readings of a process.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanup, installSignalHandlers, onCleanup, sh } from '../cleanup.mjs';

// ---------------------------------------------------------------------------------------------------
// Cleanup and commands (bench/cleanup.mjs)

export { cleanup, installSignalHandlers, onCleanup, sh };

/** Runs `cmd` and resolves with its exit code and output, without blocking the event loop. */
export function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', (err) => resolve({ code: -1, stdout, stderr: err.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A long-running child: its output line by line (the last `keep` lines of each stream kept), an
 * `exited` promise, and a kill at cleanup (SIGKILL by its pid) when it is still running then.
 */
export function startProcess(name, cmd, args, { env, keep = 200, onLine, stdin = false } = {}) {
  const child = spawn(cmd, args, {
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: env ?? process.env,
  });
  const lines = { stdout: [], stderr: [] };
  const waiters = [];
  for (const stream of ['stdout', 'stderr']) {
    let pending = '';
    child[stream].on('data', (d) => {
      pending += d;
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const kept = lines[stream];
        kept.push(line);
        if (kept.length > keep) kept.shift();
        onLine?.(line, stream);
        for (const w of [...waiters]) w(line, stream);
        nl = pending.indexOf('\n');
      }
    });
  }
  let exitInfo;
  const exited = new Promise((resolve) => {
    child.on('error', (err) => {
      exitInfo = { code: -1, signal: null, error: err.message };
      resolve(exitInfo);
    });
    child.on('close', (code, signal) => {
      exitInfo ??= { code, signal };
      resolve(exitInfo);
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null && exitInfo === undefined;
  const kill = onCleanup(() => {
    if (running()) child.kill('SIGKILL');
  });
  return {
    name,
    child,
    lines,
    exited,
    running,
    kill,
    /** The last `n` lines of a stream, for an error message. */
    tail(stream = 'stderr', n = 30) {
      return lines[stream].slice(-n).join('\n');
    },
    /** Resolves with the first line (from now on) matching `re`; rejects when the process ends first or after `ms`. */
    waitForLine(re, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`${name}: no line matching ${re} within ${ms / 1000} s\n${this.tail('stderr', 20)}`),
          );
        }, ms);
        const waiter = (line) => {
          const m = re.exec(line);
          if (!m) return;
          done();
          resolve(m);
        };
        const done = () => {
          clearTimeout(timer);
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
        };
        waiters.push(waiter);
        exited.then((info) => {
          if (!waiters.includes(waiter)) return;
          done();
          reject(
            new Error(
              `${name} exited (${info.signal ?? info.code}) before printing ${re}:\n${this.tail('stderr', 30)}\n${this.tail('stdout', 10)}`,
            ),
          );
        });
      });
    },
    /** SIGTERM, then SIGKILL after `ms`; resolves with the exit information. */
    async stop(ms = 15_000) {
      if (running()) child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (running()) child.kill('SIGKILL');
      }, ms);
      const info = await exited;
      clearTimeout(timer);
      return info;
    },
  };
}

/**
 * The Node.js process at or below `pid`: the wrappers (ip netns exec, nsenter, bin/netmon's bash) exec
 * into it, so it is usually `pid` itself once the exec happened; a command that forks is searched
 * through /proc/<pid>/task/<tid>/children. Undefined while there is none (yet).
 */
export function findNodeProcess(pid) {
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift();
    let exe;
    try {
      exe = path.basename(readlinkSync(`/proc/${p}/exe`));
    } catch {
      continue;
    }
    if (/^node(\d+(\.\d+)*)?$/.test(exe)) return p;
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids) queue.push(...kids.split(/\s+/).map(Number));
      }
    } catch {}
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// /proc

export const CLK_TCK = Number(sh('getconf', ['CLK_TCK']).trim()) || 100;

/** Parses /proc/<pid>/stat: user and system CPU time in clock ticks (every thread's). */
export function parseStat(text) {
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  return { utime: Number(rest[11]), stime: Number(rest[12]) };
}

/** Parses /proc/<pid>/status: the memory fields, in bytes. */
export function parseStatus(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem|VmSwap):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

export function readCpu(pid) {
  return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU ticks of a process and every process below it (the load generator's workers). */
export function treeCpu(pid) {
  const sum = { utime: 0, stime: 0 };
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift();
    try {
      const c = readCpu(p);
      sum.utime += c.utime;
      sum.stime += c.stime;
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids) queue.push(...kids.split(/\s+/).map(Number));
      }
    } catch {}
  }
  return sum;
}

export function readMemory(pid) {
  return parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** Busy and total CPU time of the whole machine (/proc/stat's first line, in clock ticks). */
export function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    load_average: os.loadavg().map((x) => Number(x.toFixed(2))),
    date: new Date().toISOString(),
  };
}
