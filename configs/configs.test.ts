// The shipped pipeline files, and what `netmon validate` promises about the files users write: run
// through the real CLI (needs `npx tsc -b` first), as users run it.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, withTmpDir } from '../test/harness/agent.js';

const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

async function shippedConfigs(): Promise<string[]> {
  const found: string[] = [];
  for (const dir of ['configs', 'configs/examples']) {
    for (const name of await readdir(path.join(ROOT, dir))) {
      if (name.endsWith('.yaml')) found.push(`${dir}/${name}`);
    }
  }
  return found.sort();
}

describe('shipped configs', () => {
  it('include the DaemonSet pipeline the help text names', async () => {
    expect(await shippedConfigs()).toEqual(expect.arrayContaining(['configs/kubernetes.yaml']));
  });

  it('every one validates, given the environment a pod would have', async () => {
    for (const config of await shippedConfigs()) {
      const r = await runCli(['validate', '-c', config], {
        // NODE_NAME, POD_IP and DAKR_URL come from the pod spec; the state folder is not writable for all.
        env: { NODE_NAME: 'node-1', POD_IP: '10.0.0.5', DAKR_URL: '', NETMON_STATE_DIR: os.tmpdir() },
      });
      expect({ config, stderr: r.stderr, code: r.code }).toEqual({ config, stderr: '', code: 0 });
      expect(r.stdout).toMatch(/^configuration is valid: \d+ pipelines? \(/);
    }
  });

  it('kubernetes.yaml refuses to guess the node name', async () => {
    // Set but empty here (the test runner's own NODE_NAME must not leak in); unset is refused as well.
    const r = await runCli(['validate', '-c', 'configs/kubernetes.yaml'], {
      env: { NODE_NAME: '', POD_IP: '10.0.0.5', NETMON_STATE_DIR: os.tmpdir() },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /configs\/kubernetes\.yaml:\d+:\d+: extensions::k8s_metadata::node_name: node_name must not be empty/,
    );
  });
});

describe('what the shipped configs listen on', () => {
  // The endpoints have no authentication: 0.0.0.0 served flows, costs and /status to every network the
  // node is on (with hostNetwork, the node's public interfaces too).
  it("every endpoint is loopback by default, and the pod's address in kubernetes.yaml", async () => {
    for (const config of await shippedConfigs()) {
      const text = await readFile(path.join(ROOT, config), 'utf8');
      for (const [, value] of text.matchAll(/^\s+endpoint: (.+)$/gm)) {
        if (config.endsWith('otlp.yaml') || value.includes('DAKR_URL')) continue; // clients, not servers
        if (config === 'configs/kubernetes.yaml') expect(value).toMatch(/^\$\{env:POD_IP\}:\d+$/);
        else
          expect({ config, value }).toEqual({
            config,
            value: expect.stringMatching(/:-127\.0\.0\.1:\d+\}$/),
          });
      }
    }
  });

  it("kubernetes.yaml refuses to start without the pod's address", async () => {
    const r = await runCli(['validate', '-c', 'configs/kubernetes.yaml'], {
      env: { NODE_NAME: 'node-1', NETMON_STATE_DIR: os.tmpdir() },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /configs\/kubernetes\.yaml:\d+:\d+: exporters::prometheus::endpoint: environment variable POD_IP is not set/,
    );
  });
});

describe('netmon validate', () => {
  const pipeline = (receiver: string, exporter: string, processors = '') =>
    `receivers:
  file:
    path: ${receiver}
${processors}exporters:
  file:
    path: ${exporter}
service:
  pipelines:
    flows: { receivers: [file], ${processors ? 'processors: [plugin], ' : ''}exporters: [file] }
`;

  it('takes several files after one --config, merged in order', async () => {
    await withTmpDir(async (dir) => {
      await writeFile(path.join(dir, 'base.yaml'), pipeline('missing.jsonl', 'out/flows.jsonl'));
      await writeFile(
        path.join(dir, 'node.yaml'),
        `receivers: { file: { path: ${JSON.stringify(SAMPLE)} } }\n`,
      );
      const r = await runCli(['validate', '--config', 'base.yaml', 'node.yaml'], { cwd: dir });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  });

  it('refuses a missing input file and an output under /proc, with key, file, line and column; run too', async () => {
    await withTmpDir(async (dir) => {
      await writeFile(path.join(dir, 'io.yaml'), pipeline('missing.jsonl', '/proc/netmon/flows.jsonl'));
      for (const cmd of ['validate', 'run']) {
        const r = await runCli([cmd, '-c', 'io.yaml'], { cwd: dir });
        expect(r.code).toBe(2);
        expect(r.stderr.split('\n').map((l) => l.trim())).toEqual([
          'netmon: invalid configuration (2 problems):',
          `io.yaml:3:5: receivers::file::path: cannot read ${path.join(dir, 'missing.jsonl')}: ENOENT (no such file or directory)`,
          'io.yaml:6:5: exporters::file::path: /proc/netmon/flows.jsonl is under /proc, a kernel pseudo-filesystem where no file can be created; write to a real filesystem (e.g. /var/lib/netmon/flows.jsonl)',
          '',
        ]);
      }
    });
  });

  // A package is looked up only among netmon's own: a node_modules that happens to sit above the config
  // file (anyone's, in /tmp) must not decide what code the agent runs. Its path can still be given.
  it('does not load a package from a node_modules near the config, and says to give its path', async () => {
    await withTmpDir(async (dir) => {
      const pkg = path.join(dir, 'node_modules', 'esm-only-plugin');
      await mkdir(pkg, { recursive: true });
      await writeFile(
        path.join(pkg, 'package.json'),
        JSON.stringify({
          name: 'esm-only-plugin',
          type: 'module',
          exports: { '.': { import: './index.js' } },
        }),
      );
      const ran = path.join(dir, 'ran');
      await writeFile(
        path.join(pkg, 'index.js'),
        `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(ran)}, 'x');\nexport default (batch) => batch;\n`,
      );
      const config = path.join(dir, 'conf', 'plugin.yaml');
      await mkdir(path.dirname(config));
      await writeFile(
        config,
        pipeline(SAMPLE, 'out/flows.jsonl', 'processors:\n  plugin: { module: esm-only-plugin }\n'),
      );
      const refused = await runCli(['validate', '-c', config]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('a node_modules near the config file is not searched');
      await expect(readFile(ran, 'utf8')).rejects.toThrow(/ENOENT/);

      await writeFile(
        config,
        pipeline(
          SAMPLE,
          'out/flows.jsonl',
          'processors:\n  plugin: { module: ../node_modules/esm-only-plugin/index.js }\n',
        ),
      );
      const byPath = await runCli(['validate', '-c', config]);
      expect(byPath.stderr).toBe('');
      expect(byPath.code).toBe(0);
    });
  });
});
