// What the agent says at start when the kernel side is not ready: no privilege, or a namespace where
// nothing uses conntrack. Root only (the first test drops every capability itself).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, NETMON, ROOT } from '../harness/agent.js';
import { privileged, sh } from '../harness/netns.js';

describe.runIf(privileged())('agent start against the kernel', () => {
  let dir: string;
  const ns = `nmempty${process.pid.toString(36)}`;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-start-'));
    await sh('ip', ['netns', 'add', ns]);
  });
  afterAll(async () => {
    await sh('ip', ['netns', 'del', ns]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  it('without capabilities the default config (mode auto) refuses to start and says what each mode needs', async () => {
    const child = spawn(
      'setpriv',
      // Still uid 0 (so every file stays readable wherever the checkout is), but with no capability left.
      ['--bounding-set=-all', '--inh-caps=-all', NETMON, 'run', '-c', 'configs/default.yaml'],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          NETMON_STATE_DIR: dir,
          NETMON_OUTPUT: path.join(dir, 'flows.jsonl'),
          NETMON_HEALTH_ENDPOINT: '127.0.0.1:0',
          NETMON_PROMETHEUS_ENDPOINT: '127.0.0.1:0',
        },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(1);
    expect(out).toContain('mode: auto: no collection mode is usable on this node');
    expect(out).toContain('CAP_BPF and CAP_NET_ADMIN missing');
    expect(out).toContain('reading conntrack needs CAP_NET_ADMIN: missing');
    expect(out).toContain('configs/examples/replay.yaml');
  });

  it('a namespace where nothing uses conntrack gets a warning that explains why it stays empty', async () => {
    const config = path.join(dir, 'empty.yaml');
    writeFileSync(
      config,
      `receivers: { conntrack: { netns: /run/netns/${ns}, read_interval: 200ms } }
processors: { delta: {} }
exporters: { file: { path: ${path.join(dir, 'empty.jsonl')} } }
service: { pipelines: { flows: { receivers: [conntrack], processors: [delta], exporters: [file] } } }
`,
    );
    const agent = new AgentProcess(['run', '--config', config]);
    const warning = await agent.waitForLog((l) => String(l.msg).includes('is empty'));
    expect(warning.msg).toContain('netfilter rule uses conntrack');
    // Accounting and events were switched on in that namespace, and the log says so.
    expect(agent.logs.some((l) => String(l.msg).startsWith('set net.netfilter.nf_conntrack_acct=1'))).toBe(
      true,
    );
    agent.signal('SIGTERM');
    expect(await agent.exit()).toBe(0);
  });
});
