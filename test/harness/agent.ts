// Runs the real `netmon` command (bin/netmon → the bundle in packages/agent/dist/bundle) as a child process, as users do.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const NETMON = path.join(ROOT, 'bin/netmon');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `netmon ARGS…` to completion. */
export function runCli(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return runCommand(NETMON, args, opts);
}

/** Runs any command to completion, collecting its output (the environment is this process' plus `env`). */
export function runCommand(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Polls `ok` every 50 ms; throws `why()` when it is still false after `timeoutMs`. */
export async function until(ok: () => boolean, timeoutMs: number, why: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(why());
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A running agent whose JSON log lines can be awaited. */
export class AgentProcess {
  readonly logs: Record<string, unknown>[] = [];
  stdout = '';
  private readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  /**
   * `netmon ARGS…`; with `via`, through that command first (`[launcher, …its args]`, netmon and its arguments
   * appended), e.g. a script that runs it as a container would.
   */
  constructor(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; via?: string[] } = {}) {
    const [command, ...prefix] = opts.via ? [...opts.via, NETMON] : [NETMON];
    this.child = spawn(command, [...prefix, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
    });
    let pending = '';
    this.child.stderr?.on('data', (d: Buffer) => {
      pending += d.toString();
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.logs.push({ msg: line, unparsed: true });
        }
        nl = pending.indexOf('\n');
      }
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }

  async waitForLog(
    match: (l: Record<string, unknown>) => boolean,
    timeoutMs = 15_000,
  ): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (Date.now() > until) {
        throw new Error(
          `log line not seen within ${timeoutMs} ms; logs:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Every log line, one JSON object a line: for a failure message. */
  text(): string {
    return this.logs.map((l) => JSON.stringify(l)).join('\n');
  }

  /** Resolves once the agent says it runs; throws with its log when it has not within `timeoutMs`. */
  async running(timeoutMs = 20_000): Promise<void> {
    await until(
      () => this.logs.some((l) => String(l.msg).startsWith('netmon is running')),
      timeoutMs,
      () => `the agent did not start:\n${this.text()}`,
    );
  }

  signal(sig: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(sig);
  }

  /** SIGTERM (the last reads reach the exporters), then its exit code. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    this.signal('SIGTERM');
    return this.exit(timeoutMs);
  }

  /** SIGKILL, if it still runs: the cleanup of a test that failed halfway. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** Waits for exit; kills the process (by its own pid) if it outlives the timeout. */
  async exit(timeoutMs = 20_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.child.kill('SIGKILL');
      throw new Error(`agent did not exit within ${timeoutMs} ms:\n${this.text()}`);
    }
    return result;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function withTmpDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-test-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
