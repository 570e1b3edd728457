// Kernel test kit: cgroups made for a test under the cgroup2 mount, processes started inside them (the
// process joins its cgroup before it execs, so every socket it opens belongs there), and bpftool as the
// oracle for which programs are attached. Needs root, like the namespaces (harness/netns.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { sh } from './netns.js';

/** The cgroup2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host). */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash >= 0 && line.slice(dash + 3).startsWith('cgroup2 ')) {
      const f = line.slice(0, dash).split(' ');
      if (f[3] === '/') return f[4];
    }
  }
  throw new Error('no cgroup2 filesystem is mounted');
}

let counter = 0;

/** A cgroup tree of a test's own: `root` and any children made with `child()`, removed by destroy(). */
export class TestCgroup {
  readonly path: string;
  private readonly children = new Set<ChildProcess>();

  constructor(prefix = 'netmon-test') {
    this.path = path.join(cgroup2Root(), `${prefix}-${process.pid}-${counter++}`);
    mkdirSync(this.path);
  }

  /** A cgroup below this one (intermediate folders made too), returned as its path. */
  child(relative: string): string {
    const p = path.join(this.path, relative);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /** The cgroup v2 id of a cgroup: its directory's inode number. */
  static id(cgroup: string): number {
    return Number(statSync(cgroup, { bigint: true }).ino);
  }

  /** Runs a command to its end inside `cgroup` (and optionally a network namespace), returning stdout. */
  run(cgroup: string, cmd: string, args: string[], netns?: string): Promise<string> {
    const inner = netns ? ['ip', 'netns', 'exec', netns, cmd, ...args] : [cmd, ...args];
    return sh('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...inner]);
  }

  /** A long-running process inside `cgroup`, killed by destroy(). */
  spawn(cgroup: string, cmd: string, args: string[], netns?: string): ChildProcess {
    const inner = netns ? ['ip', 'netns', 'exec', netns, cmd, ...args] : [cmd, ...args];
    const child = spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...inner], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Kills what spawn() started, and any process still in the tree (every one was started by this test
   * inside its own cgroups, e.g. by a run() whose test failed), then removes the cgroups, deepest first.
   */
  async destroy(): Promise<void> {
    for (const child of this.children) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const remove = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) remove(path.join(dir, e.name));
      }
      for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      // A process that just exited may still be leaving the cgroup: retry briefly.
      for (let i = 0; ; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || i > 50) throw err;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    };
    remove(this.path);
  }
}

/** The ids of the BPF programs attached to a cgroup, by attach type, as bpftool reports them. */
export async function attachedPrograms(
  cgroup: string,
): Promise<{ id: number; attach_type: string; name: string }[]> {
  const out = await sh('bpftool', ['-j', 'cgroup', 'show', cgroup]);
  return out.trim() === '' ? [] : (JSON.parse(out) as { id: number; attach_type: string; name: string }[]);
}
