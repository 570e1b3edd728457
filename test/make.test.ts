// The Makefile's entry points as a user types them: `make run CONFIG=…` runs that pipeline file alone
// (not merged onto the default one), through the same bootstrap as `make run`.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, withTmpDir } from './harness/agent.js';

describe('make run', () => {
  it('CONFIG= runs the named file instead of configs/default.yaml', async () => {
    await withTmpDir(async (dir) => {
      const child = spawn('make', ['-s', 'run', 'CONFIG=configs/examples/replay.yaml'], {
        cwd: ROOT,
        // Its own process group, as a terminal gives a command: Ctrl-C reaches make and the agent alike.
        detached: true,
        env: {
          ...process.env,
          NETMON_OUTPUT: path.join(dir, 'flows.jsonl'),
          NETMON_HEALTH_ENDPOINT: '127.0.0.1:0',
          NETMON_PROMETHEUS_ENDPOINT: '127.0.0.1:0',
        },
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((r) => child.on('close', r));
      const until = Date.now() + 60_000;
      while (!out.includes('netmon is running') && Date.now() < until && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const running = out.includes('netmon is running');
      // Ctrl-C: SIGINT to the whole group (make, and the agent the bootstrap exec'd).
      if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGINT');
      await exited;
      expect(running, out).toBe(true);
      expect(out).toContain('netmon stopped');
      // The replay's own receiver, not the default pipeline's collection mode (which needs root and the kernel).
      expect(out).toContain('replay.yaml');
      expect(out).not.toMatch(/"component":"(flows|conntrack|ebpf|cilium|dns)"/);
    });
  }, 90_000);
});
