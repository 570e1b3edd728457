// Pay only for what the config uses: `netmon validate` and `netmon components` load no component's heavy
// dependency, and an agent whose config has no k8s_metadata never loads the Kubernetes client. The real
// CLI runs under a module hook that records every module it resolves: from the packages' dist/, and as
// bin/netmon runs it, bundled, where a dependency is inside a chunk the build lists in
// dist/bundle-packages.json.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NETMON, ROOT, until } from './harness/agent.js';

const CLI = path.join(ROOT, 'packages/agent/dist/cli.js');
/** The packages inside each file of the bundle, written by the build (packages/agent/src/tools/bundle.ts). */
const BUNDLE_PACKAGES = path.join(ROOT, 'packages/agent/dist/bundle-packages.json');
const BUNDLE_DIR = path.join(ROOT, 'packages/agent/dist/bundle/');
/**
 * Packages that only a component which needs them may load (the metrics SDK, with its resources module,
 * is the running agent's own: self-metrics).
 */
const HEAVY = [
  '@kubernetes/client-node',
  'undici',
  '@grpc/grpc-js',
  '@grpc/proto-loader',
  'protobufjs',
  '@opentelemetry/exporter-metrics-otlp-grpc',
  '@netmon/native',
];

// Records the URL of every module resolved (import and require alike) and writes them at exit.
const HOOK = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const loaded = new Set();
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.add(r.url); return r; } });
process.on('exit', () => writeFileSync(process.env.NETMON_LOADED_FILE, [...loaded].join('\\n')));
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-imports-'));
  await writeFile(path.join(dir, 'hook.mjs'), HOOK);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * Longest a one-shot command may take to finish, the agent to say it runs, and then to exit after
 * SIGTERM: each takes a second or two, a few on a loaded 2-core CI. Only a hang reaches it.
 */
const STEP_TIMEOUT_MS = 20_000;

/**
 * Runs the CLI with `args` to its end; resolves with the heavy packages it loaded and its exit code. With
 * `stop`, a long-running command (`run`) gets SIGTERM once it logged that it runs: only then are its
 * signal handlers in place, so that it drains, exits and the hook writes what it loaded (a SIGTERM before
 * kills it with nothing written). No fixed sleep: how long starting takes depends on the machine's load.
 */
async function heavyLoaded(
  name: string,
  args: string[],
  opts: { stop?: boolean; env?: NodeJS.ProcessEnv; bundled?: boolean } = {},
) {
  const loadedFile = path.join(dir, `${name}${opts.bundled ? '-bundled' : ''}.loaded`);
  const hook = path.join(dir, 'hook.mjs');
  const env = { ...process.env, ...opts.env, NETMON_LOADED_FILE: loadedFile };
  // bin/netmon hands NODE_OPTIONS to the node it starts, with its own flags beside.
  const child = opts.bundled
    ? spawn(NETMON, args, {
        env: { ...env, NODE_OPTIONS: `--import ${hook}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, ['--import', hook, CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.stdout.resume();
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    }),
  );
  const ended = (r: { code: number | null; signal: NodeJS.Signals | null }) =>
    `exit code ${r.code}${r.signal ? `, signal ${r.signal}` : ''}`;
  try {
    if (opts.stop) {
      // Its log is JSON lines on stderr; the line it writes once every component has started.
      const running = () =>
        stderr.split('\n').some((line) => {
          try {
            return String(JSON.parse(line).msg).startsWith('netmon is running');
          } catch {
            return false;
          }
        });
      await until(
        () => running() || exited,
        STEP_TIMEOUT_MS,
        () =>
          `\`netmon ${args.join(' ')}\` did not log "netmon is running" within ${STEP_TIMEOUT_MS} ms:\n${stderr}`,
      );
      if (!running()) {
        throw new Error(
          `\`netmon ${args.join(' ')}\` ended before it logged "netmon is running" (${ended(await exit)}):\n${stderr}`,
        );
      }
      child.kill('SIGTERM');
    }
    await until(
      () => exited,
      STEP_TIMEOUT_MS,
      () =>
        `\`netmon ${args.join(' ')}\` did not exit within ${STEP_TIMEOUT_MS} ms${opts.stop ? ' of SIGTERM' : ''}:\n${stderr}`,
    );
  } finally {
    // A test that failed halfway leaves no agent behind (its own pid).
    if (!exited) child.kill('SIGKILL');
  }
  const result = await exit;
  let urls: string[];
  try {
    urls = (await readFile(loadedFile, 'utf8')).split('\n');
  } catch (err) {
    throw new Error(
      `\`netmon ${args.join(' ')}\` wrote no module list (${ended(result)}): ${(err as Error).message}\n${stderr}`,
    );
  }
  const inChunks = new Set<string>();
  if (opts.bundled) {
    const packages = JSON.parse(await readFile(BUNDLE_PACKAGES, 'utf8')) as Record<string, string[]>;
    const chunks = urls.filter((u) => u.startsWith(`file://${BUNDLE_DIR}`)).map((u) => path.basename(u));
    // The hook saw the bundle: without that, an empty list below would prove nothing.
    expect(chunks, stderr).toContain('netmon.js');
    for (const chunk of chunks) for (const pkg of packages[chunk] ?? []) inChunks.add(pkg);
  }
  const heavy = HEAVY.filter(
    (pkg) =>
      inChunks.has(pkg) ||
      urls.some(
        (u) => u.includes(`/node_modules/${pkg}/`) || (pkg === '@netmon/native' && u.includes('/native/')),
      ),
  );
  return { heavy, code: result.code, stderr };
}

const configFile = async (name: string, yaml: string) => {
  const file = path.join(dir, name);
  await writeFile(file, yaml);
  return file;
};

describe.each([
  { entry: 'the CLI from dist/', bundled: false },
  { entry: 'bin/netmon (the bundle)', bundled: true },
])('what $entry loads', ({ bundled }) => {
  it(
    '`netmon components` loads no heavy dependency',
    async () => {
      const r = await heavyLoaded('components', ['components'], { bundled });
      expect(r.code, r.stderr).toBe(0);
      expect(r.heavy).toEqual([]);
    },
    3 * STEP_TIMEOUT_MS,
  );

  it(
    '`netmon validate` of the shipped configs loads no heavy dependency',
    async () => {
      for (const config of ['default.yaml', 'kubernetes.yaml', 'devzero.yaml', 'examples/replay.yaml']) {
        // What the shipped configs read from the environment, so that each is valid and fully checked.
        const r = await heavyLoaded(
          `validate-${path.basename(config)}`,
          ['validate', '--config', path.join(ROOT, 'configs', config)],
          { env: { NODE_NAME: 'node-a', POD_IP: '127.0.0.1', DAKR_URL: 'http://127.0.0.1:1' }, bundled },
        );
        expect(r.code, `${config}: ${r.stderr}`).toBe(0);
        expect(r.heavy, `${config}: ${r.stderr}`).toEqual([]);
      }
    },
    5 * STEP_TIMEOUT_MS,
  );

  it(
    'an agent without k8s_metadata never loads the Kubernetes client',
    async () => {
      const out = path.join(dir, 'flows.jsonl');
      const config = await configFile(
        'no-k8s.yaml',
        `receivers:
  file: { path: ${path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl')} }
exporters:
  file: { path: ${out} }
service:
  pipelines:
    flows: { receivers: [file], exporters: [file] }
`,
      );
      const r = await heavyLoaded('run-no-k8s', ['run', '--config', config], { stop: true, bundled });
      expect(r.code, r.stderr).toBe(0);
      expect(r.heavy).toEqual([]);
    },
    3 * STEP_TIMEOUT_MS,
  );

  it(
    'an agent with k8s_metadata does load it (the check above can fail)',
    async () => {
      const config = await configFile(
        'k8s.yaml',
        `receivers:
  file: { path: ${path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl')} }
processors:
  k8s_attributes: {}
exporters:
  debug: {}
extensions:
  k8s_metadata: { snapshot: ${path.join(ROOT, 'configs/examples/replay-cluster.json')} }
service:
  extensions: [k8s_metadata]
  pipelines:
    flows: { receivers: [file], processors: [k8s_attributes], exporters: [debug] }
`,
      );
      const r = await heavyLoaded('run-k8s', ['run', '--config', config], { stop: true, bundled });
      expect(r.code, r.stderr).toBe(0);
      expect(r.heavy).toContain('@kubernetes/client-node');
    },
    3 * STEP_TIMEOUT_MS,
  );
});
