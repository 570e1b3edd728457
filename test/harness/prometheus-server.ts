// Debian's Prometheus server, scraping one target every second, and its PromQL API: the oracle of the
// end-to-end metric tests (what a user's Prometheus would store and answer).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './agent.js';

/** Whether a Debian prometheus tool runs here; when not, a failure under NETMON_REQUIRE_PRIVILEGED=1. */
export function prometheusTool(name: 'promtool' | 'prometheus'): boolean {
  const r = spawnSync(name, ['--version'], { encoding: 'utf8' });
  if (!r.error && r.status === 0) return true;
  const reason = `${name} is not installed (Debian package 'prometheus'; scripts/bootstrap.sh installs it)`;
  if (process.env.NETMON_REQUIRE_PRIVILEGED === '1')
    throw new Error(`NETMON_REQUIRE_PRIVILEGED=1 but ${reason}`);
  console.warn(`skipping: ${reason}`);
  return false;
}

/** One series of a PromQL instant vector. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export class PrometheusServer {
  private log = '';

  private constructor(
    private readonly child: ChildProcess,
    /** http://127.0.0.1:<port> */
    readonly base: string,
  ) {
    child.stderr?.on('data', (d) => {
      this.log += d;
    });
  }

  /** Starts a server in `dir` (config and TSDB there) scraping `target` (host:port) every second. */
  static async start(dir: string, target: string): Promise<PrometheusServer> {
    const port = await freePort();
    const config = path.join(dir, 'prometheus.yml');
    await writeFile(
      config,
      `global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: netmon
    static_configs: [{ targets: ['${target}'] }]
`,
    );
    const child = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return new PrometheusServer(child, `http://127.0.0.1:${port}`);
  }

  async query(promql: string): Promise<PromSample[]> {
    const res = await fetch(`${this.base}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data?: { result: PromSample[] }; error?: string };
    if (body.status !== 'success') throw new Error(`PromQL ${promql}: ${body.error}`);
    return body.data?.result ?? [];
  }

  /**
   * Polls until `check` passes on the query's result (the scrapes catch up); past the timeout, throws the
   * last failure with the end of the server's log.
   */
  async eventually(promql: string, check: (result: PromSample[]) => void, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        check(await this.query(promql));
        return;
      } catch (err) {
        if (Date.now() > until) {
          throw new Error(`${(err as Error).message}\nprometheus log:\n${this.log.slice(-4000)}`);
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
