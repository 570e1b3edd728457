// The container image without a container engine (none runs here or in CI): the scripts its RUN steps call
// run for real — scripts/image-stage.mjs on this checkout's build, and the tree it stages runs on its own, away
// from the repo's node_modules; scripts/image-runtime.sh into a scratch root; bootstrap.sh's build-only apt
// set; scripts/image-build.sh (make image) against stand-in engines — and the Dockerfile is read to check that
// it calls exactly those, copies what the staging wrote, and installs every library the built addon links.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ROOT } from './harness/agent.js';
import { DakrStandIn } from './harness/dakr-stand-in.js';

const run = promisify(execFile);
const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');
const rootPackage = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  description: string;
  license: string;
  devDependencies: Record<string, string>;
};
const agentVersion = (
  JSON.parse(readFileSync(path.join(ROOT, 'packages/agent/package.json'), 'utf8')) as { version: string }
).version;

interface LockEntry {
  version?: string;
  dev?: boolean;
  devOptional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

// --- the Dockerfile, read as the engine reads it ----------------------------------------------------------

interface Instruction {
  cmd: string;
  args: string;
  stage: number; // -1: before the first FROM
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw) || (pending === '' && raw.trim() === '')) continue;
    if (raw.endsWith('\\')) {
      pending += `${raw.slice(0, -1)} `;
      continue;
    }
    const line = (pending + raw).trim();
    pending = '';
    const [, cmd, args] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (cmd.toUpperCase() === 'FROM') stage++;
    out.push({ cmd: cmd.toUpperCase(), args: args.replace(/\s+/g, ' ').trim(), stage });
  }
  return out;
}

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const inStage = (stage: number, cmd: string) => dockerfile.filter((i) => i.stage === stage && i.cmd === cmd);
const froms = dockerfile.filter((i) => i.cmd === 'FROM');
const RUNTIME = froms.length - 1;

/** A RUN's command with its --mount flags taken off, and the bind mounts (target → source in the context). */
function runStep(i: Instruction): { command: string[]; binds: Map<string, string> } {
  const words = i.args.split(' ');
  const binds = new Map<string, string>();
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() as string;
    const opts = Object.fromEntries(
      flag
        .replace(/^--mount=/, '')
        .split(',')
        .map((kv) => kv.split('=')),
    ) as Record<string, string>;
    if (opts.type === 'bind') binds.set(opts.target, opts.source);
  }
  return { command: words, binds };
}

/** The runtime stage's apt packages: the arguments of its image-runtime.sh step. */
function runtimePackages(): string[] {
  for (const i of inStage(RUNTIME, 'RUN')) {
    const { command, binds } = runStep(i);
    if (binds.get(command[1]) === 'scripts/image-runtime.sh') return command.slice(2);
  }
  throw new Error('the runtime stage has no scripts/image-runtime.sh step');
}

function labels(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of inStage(RUNTIME, 'LABEL')) {
    for (const m of i.args.matchAll(/([\w.-]+)="([^"]*)"/g)) out[m[1]] = m[2];
  }
  return out;
}

// --- helpers -----------------------------------------------------------------------------------------------

async function tmpDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'netmon-image-'));
}

function walk(dir: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = path.relative(dir, path.join(e.parentPath, e.name));
    if (e.isDirectory()) dirs.push(p);
    else files.push(p);
  }
  return { files, dirs };
}

/** Every package folder in a node_modules tree (node_modules/x, node_modules/@s/x, nested ones too). */
function packageDirs(tree: string): string[] {
  return walk(tree)
    .files.filter((f) => /(^|\/)node_modules\/(@[^/]+\/)?[^/@]+\/package\.json$/.test(f))
    .map((f) => path.dirname(f));
}

/** Node's lookup of `dep` from the package folder `from` (relative to `tree`): its own node_modules, then above. */
function resolvePackage(tree: string, from: string, dep: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ''}node_modules/${dep}`;
    if (existsSync(path.join(tree, candidate, 'package.json'))) return candidate;
    if (!dir) return undefined;
    const i = dir.lastIndexOf('/node_modules/');
    dir = i < 0 ? '' : dir.slice(0, i);
  }
}

/** The Debian package that holds a library `ldd` named, trying the /usr-merged spellings too. */
async function debPackage(lib: string): Promise<string> {
  const real = realpathSync(lib);
  const candidates = new Set([lib, real]);
  for (const p of [lib, real]) {
    if (p.startsWith('/usr/')) candidates.add(p.slice(4));
    else candidates.add(`/usr${p}`);
  }
  for (const c of candidates) {
    const r = await run('dpkg', ['-S', c]).catch(() => undefined);
    if (r) return r.stdout.split(':')[0].trim();
  }
  throw new Error(`dpkg -S knows no package for ${lib} (${[...candidates].join(', ')})`);
}

async function lddLibraries(file: string): Promise<string[]> {
  const { stdout } = await run('ldd', [file]);
  expect(stdout, `ldd ${file}`).not.toContain('not found');
  return [...stdout.matchAll(/=>\s+(\/\S+)/g)].map((m) => m[1]);
}

/** An environment with nothing of this checkout in it: node on PATH (as in the image), no NODE_PATH. */
function bareEnv(nodeDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: `${nodeDir}:/usr/bin:/bin`, HOME: os.tmpdir(), LANG: 'C.UTF-8', ...extra };
}

// --- the staged tree ---------------------------------------------------------------------------------------

let scratch: string;
let out: string; // what the Dockerfile calls /out
let stage: string; // out/opt/netmon
let nodeDir: string;
let stageLog: string;

/** The stage's own netmon, in a bare environment, from a working directory of its own. */
function netmon(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(path.join(stage, 'bin/netmon'), args, {
    cwd: path.join(scratch, 'work'),
    env: bareEnv(nodeDir, env),
  });
}

beforeAll(async () => {
  scratch = await tmpDir();
  out = path.join(scratch, 'out');
  // The staging runs in the repo as the Dockerfile's build stage runs it (its image's node), into OUT.
  const r = await run(process.execPath, [path.join(ROOT, 'scripts/image-stage.mjs'), out], { cwd: ROOT });
  stageLog = r.stdout.trim();
  stage = path.join(out, 'opt/netmon');
  nodeDir = path.join(scratch, 'node-bin');
  mkdirSync(nodeDir);
  cpSync(process.execPath, path.join(nodeDir, 'node'));
  mkdirSync(path.join(scratch, 'work'));
}, 60_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('scripts/image-stage.mjs: the runtime tree', () => {
  it('holds the launcher, the bundle, the addon with its BPF objects, grpc-js and the shipped pipelines', () => {
    console.log(stageLog);
    expect(stageLog).toMatch(/^image-stage: .*: \d+ files, [\d.]+ MiB/);
    const top = readdirSync(stage).sort();
    expect(top).toEqual(
      [
        'bin',
        'configs',
        'node_modules',
        'packages',
        ...(existsSync(path.join(ROOT, 'LICENSE')) ? ['LICENSE'] : []),
      ].sort(),
    );
    accessSync(path.join(stage, 'bin/netmon'), constants.X_OK);
    expect(readFileSync(path.join(stage, 'bin/netmon'), 'utf8')).toBe(
      readFileSync(path.join(ROOT, 'bin/netmon'), 'utf8'),
    );
    // The bundle, every file the build wrote (bin/netmon finds it at the same relative place).
    const bundle = 'packages/agent/dist/bundle';
    expect(walk(path.join(stage, 'packages')).files.every((f) => f.startsWith('agent/dist/bundle/'))).toBe(
      true,
    );
    const built = walk(path.join(ROOT, bundle)).files.sort();
    expect(walk(path.join(stage, bundle)).files.sort()).toEqual(built);
    expect(built).toEqual(
      expect.arrayContaining(['netmon.js', 'core.js', 'package.json', 'assets/dakr.proto']),
    );
    const native = path.join(stage, 'node_modules/@netmon/native');
    expect(walk(native).files.sort()).toEqual(
      [
        'build/Release/dns.bpf.o',
        'build/Release/flows.bpf.o',
        'build/Release/netmon_native.node',
        'dist/index.js',
        'package.json',
      ].sort(),
    );
    for (const f of ['build/Release/netmon_native.node', 'build/Release/flows.bpf.o', 'dist/index.js']) {
      expect(readFileSync(path.join(native, f)).equals(readFileSync(path.join(ROOT, 'native', f))), f).toBe(
        true,
      );
    }
    const nativePkg = JSON.parse(readFileSync(path.join(native, 'package.json'), 'utf8'));
    expect(nativePkg).toMatchObject({
      name: '@netmon/native',
      type: 'module',
      exports: { '.': './dist/index.js' },
    });
    const shipped = readdirSync(path.join(ROOT, 'configs')).filter((f) => f.endsWith('.yaml'));
    expect(shipped).toContain('devzero.yaml');
    expect(readdirSync(path.join(stage, 'configs')).sort()).toEqual(shipped.sort());
  });

  it('holds no TypeScript, source map, test folder or development dependency', () => {
    const { files, dirs } = walk(stage);
    expect(files.filter((f) => /\.(?:[cm]?ts|map)$/.test(f))).toEqual([]);
    expect(dirs.filter((d) => /(^|\/)(test|tests|__tests__|testdata|src\/testkit)$/.test(d))).toEqual([]);
    expect(dirs.filter((d) => readdirSync(path.join(stage, d)).length === 0)).toEqual([]);
    const pkgs = packageDirs(stage);
    const names = pkgs.map((p) => p.replace(/^.*node_modules\//, ''));
    // The development tools: root devDependencies that nothing at run time needs (protobufjs is one too,
    // for the tests' protobuf decoding, but grpc-js needs it: the lockfile does not mark it dev).
    const devOnly = Object.keys(rootPackage.devDependencies).filter(
      (d) => lock.packages[`node_modules/${d}`]?.dev || lock.packages[`node_modules/${d}`]?.devOptional,
    );
    expect(devOnly).toEqual(expect.arrayContaining(['typescript', 'vitest', 'esbuild', '@biomejs/biome']));
    for (const dev of [...devOnly, 'node-gyp', 'node-addon-api']) {
      expect(names, `${dev} is a development dependency`).not.toContain(dev);
    }
    expect(names.filter((n) => n.startsWith('@types/'))).toEqual([]);
    // Each one as npm ci installed it at that place (same version), none of them dev-only in the lockfile.
    for (const p of pkgs.filter((d) => d !== 'node_modules/@netmon/native')) {
      const entry = lock.packages[p];
      expect(entry, `${p} is not in package-lock.json`).toBeDefined();
      expect(entry.dev, `${p} is a development dependency`).not.toBe(true);
      expect(JSON.parse(readFileSync(path.join(stage, p, 'package.json'), 'utf8')).version).toBe(
        entry.version,
      );
    }
    expect(names).toEqual(expect.arrayContaining(['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']));
  });

  it('holds every package a staged package requires (read from their own package.json, not the lockfile)', () => {
    for (const p of packageDirs(stage)) {
      const pkg = JSON.parse(readFileSync(path.join(stage, p, 'package.json'), 'utf8')) as LockEntry;
      for (const dep of Object.keys(pkg.dependencies ?? {})) {
        if (dep.startsWith('@types/') || (p === 'node_modules/@netmon/native' && dep === 'node-addon-api'))
          continue;
        expect(resolvePackage(stage, p, dep), `${dep}, required by ${p}`).toBeDefined();
      }
    }
  });

  it('refuses to write over an earlier stage, and says so', async () => {
    const r = await run(process.execPath, [path.join(ROOT, 'scripts/image-stage.mjs'), out]).catch((e) => e);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${stage} exists already`);
  });
});

describe('the staged tree runs on its own (node on PATH, no repo, no NODE_PATH)', () => {
  it('is away from every node_modules of the checkout', () => {
    expect(realpathSync(stage).startsWith(`${ROOT}/`)).toBe(false);
    // Node looks in node_modules of every folder above the bundle: only the stage's own may exist.
    for (let d = path.dirname(stage); d !== path.dirname(d); d = path.dirname(d)) {
      expect(existsSync(path.join(d, 'node_modules')), `${d}/node_modules`).toBe(false);
    }
    expect(existsSync(path.join(stage, '.tools'))).toBe(false);
  });

  it('prints its version and validates every shipped pipeline', async () => {
    expect((await netmon(['--version'])).stdout.trim()).toBe(agentVersion);
    for (const f of readdirSync(path.join(stage, 'configs'))) {
      const r = await netmon(['validate', '-c', path.join(stage, 'configs', f)], {
        NODE_NAME: 'node-1',
        POD_IP: '10.0.0.5',
        DAKR_URL: 'https://dakr.example.com',
      });
      expect(r.stdout, f).toMatch(/^configuration is valid/);
    }
  });

  it("runs the image's command (run --zxporter) and zxporter-netmon's chart's argument", async () => {
    const env = { DAKR_URL: 'https://dakr.example.com', CLUSTER_TOKEN: 'secret-token', NODE_NAME: 'node-7' };
    const cmd = inStage(RUNTIME, 'CMD')[0].args;
    const zx = await netmon([...(JSON.parse(cmd) as string[]), '--print-config'], env);
    expect(zx.stdout).toContain('devzero:');
    expect(zx.stdout).toContain('node_name: node-7');
    expect(zx.stdout).not.toContain('secret-token');
    // The chart's only argument replaces CMD: `netmon -collector-mode=netfilter`.
    const chart = await netmon(['-collector-mode=netfilter', '--print-config'], env);
    expect(chart.stdout).toMatch(/^\s+mode: netfilter$/m);
  });

  it('replays flows through a plugin to a file and to the DevZero stand-in over gRPC (grpc-js from the stage)', async () => {
    const dir = path.join(scratch, 'replay');
    mkdirSync(dir);
    const input = readFileSync(SAMPLE, 'utf8');
    writeFileSync(path.join(dir, 'flows.jsonl'), input);
    const want = { tx_bytes: 0, rx_bytes: 0, rows: 0 };
    for (const line of input.trim().split('\n')) {
      const r = JSON.parse(line) as { tx_bytes: number; rx_bytes: number };
      want.tx_bytes += r.tx_bytes;
      want.rx_bytes += r.rx_bytes;
      want.rows++;
    }
    // A plugin that imports @netmon/core: it must get the staged bundle's own (the loader points it there).
    writeFileSync(
      path.join(dir, 'check.mjs'),
      `import { appendFileSync } from 'node:fs';
import { FlowBatch } from '@netmon/core';
export default { process(batch, ctx) { appendFileSync(ctx.options.out, (batch instanceof FlowBatch) + ' ' + batch.length + '\\n'); return batch; } };
`,
    );
    const standIn = await DakrStandIn.start();
    let agent: ChildProcess | undefined;
    try {
      writeFileSync(
        path.join(dir, 'replay.yaml'),
        `receivers: { file: { path: ./flows.jsonl } }
processors: { plugin/check: { module: ./check.mjs, options: { out: ${JSON.stringify(path.join(dir, 'seen.txt'))} } } }
exporters:
  file: { path: ./out.jsonl }
  devzero: { endpoint: ${standIn.url}, token: image-test, node_name: node-image, flush_interval: 1s }
extensions: { health_check: { endpoint: 127.0.0.1:0 } }
service:
  extensions: [health_check]
  pipelines: { flows: { receivers: [file], processors: [plugin/check], exporters: [file, devzero] } }
`,
      );
      agent = spawn(path.join(stage, 'bin/netmon'), ['run', '-c', path.join(dir, 'replay.yaml')], {
        cwd: path.join(scratch, 'work'),
        env: bareEnv(nodeDir),
      });
      let logs = '';
      agent.stderr?.on('data', (d) => (logs += d));
      agent.stdout?.on('data', (d) => (logs += d));
      const exited = new Promise<number | null>((r) => agent?.on('close', r));
      await standIn.waitFor(
        () => standIn.totals().tx_bytes === want.tx_bytes || agent?.exitCode !== null,
        20_000,
        'every byte of the replay at the stand-in',
      );
      expect(agent.exitCode, logs).toBeNull();
      agent.kill('SIGTERM');
      expect(await exited, logs).toBe(0);
      const totals = standIn.totals();
      expect({ tx: totals.tx_bytes, rx: totals.rx_bytes }).toEqual({ tx: want.tx_bytes, rx: want.rx_bytes });
      expect(standIn.traffic[0].headers.authorization).toBe('Bearer image-test');
      expect(readFileSync(path.join(dir, 'out.jsonl'), 'utf8')).toBe(input);
      const seen = readFileSync(path.join(dir, 'seen.txt'), 'utf8').trim().split('\n');
      expect(new Set(seen.map((l) => l.split(' ')[0]))).toEqual(new Set(['true']));
      expect(seen.reduce((s, l) => s + Number(l.split(' ')[1]), 0)).toBe(want.rows);
    } finally {
      if (agent?.exitCode === null) agent.kill('SIGKILL');
      await standIn.stop();
    }
  }, 40_000);
});

// --- the Dockerfile ----------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  it('builds on Node 24 Debian slim in a build stage and runs on the same base', () => {
    expect(dockerfile[0]).toMatchObject({ cmd: 'ARG', stage: -1 });
    expect(dockerfile[0].args).toMatch(/^NODE_IMAGE=node:24\.\d+\.\d+-bookworm-slim$/);
    expect(froms.map((f) => f.args)).toEqual(['${NODE_IMAGE} AS build', '${NODE_IMAGE}']);
  });

  it('defaults to the Node of .node-version, the one the checkout builds and tests with', () => {
    const nodeVersion = readFileSync(path.join(ROOT, '.node-version'), 'utf8').trim();
    expect(nodeVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(dockerfile[0].args).toBe(`NODE_IMAGE=node:${nodeVersion}-bookworm-slim`);
  });

  it('names in its comments only capabilities some collection mode is granted (files/privileges.yaml)', () => {
    const privileges = parseYaml(
      readFileSync(path.join(ROOT, 'charts/netmon/files/privileges.yaml'), 'utf8'),
    );
    const granted = new Set(
      Object.values(privileges as Record<string, { capabilities?: string[] }>).flatMap(
        (e) => e.capabilities ?? [],
      ),
    );
    expect(granted.size).toBeGreaterThan(0);
    const named = [...readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').matchAll(/\bCAP_([A-Z_]+)/g)].map(
      (m) => m[1],
    );
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((c) => !granted.has(c))).toEqual([]);
  });

  it('does its work only through the scripts these tests run, and copies what the staging wrote', () => {
    const tested = new Set(['scripts/bootstrap.sh', 'scripts/image-stage.mjs', 'scripts/image-runtime.sh']);
    const steps = dockerfile
      .filter((i) => i.cmd === 'RUN')
      .map((i) => {
        const { command, binds } = runStep(i);
        expect(['bash', 'node'], i.args).toContain(command[0]);
        return { stage: i.stage, script: binds.get(command[1]) ?? command[1], args: command.slice(2) };
      });
    for (const s of steps) expect(tested, s.script).toContain(s.script);
    expect(steps.filter((s) => s.stage === 0)).toEqual([
      { stage: 0, script: 'scripts/bootstrap.sh', args: ['--build-deps-only'] },
      { stage: 0, script: 'scripts/image-stage.mjs', args: ['/out'] },
    ]);
    expect(steps.filter((s) => s.stage === RUNTIME).map((s) => s.script)).toEqual([
      'scripts/image-runtime.sh',
    ]);
    // The build context holds the whole checkout (COPY . .), the runtime stage only the staged tree.
    expect(inStage(0, 'COPY').map((c) => c.args)).toEqual(['. .']);
    expect(inStage(0, 'WORKDIR').map((c) => c.args)).toEqual(['/src']);
    expect(inStage(RUNTIME, 'COPY').map((c) => c.args)).toEqual(['--from=build /out/opt/netmon /opt/netmon']);
    // /out/opt/netmon is where the staging writes: the tree the tests above ran.
    expect(path.relative(out, stage)).toBe('opt/netmon');
  });

  it('installs in the runtime stage every library the built addon links, and no other', async () => {
    const addon = path.join(stage, 'node_modules/@netmon/native/build/Release/netmon_native.node');
    const needed = new Set(await Promise.all((await lddLibraries(addon)).map(debPackage)));
    // Node's own libraries are in every image Node runs in (the base).
    const base = new Set(await Promise.all((await lddLibraries(process.execPath)).map(debPackage)));
    const listed = runtimePackages();
    for (const p of needed) expect(base.has(p) || listed.includes(p), `${p} (ldd of the addon)`).toBe(true);
    for (const p of listed) expect(needed, `${p} is listed but the addon does not link it`).toContain(p);
    expect(listed).toEqual(expect.arrayContaining(['libbpf1', 'libmnl0', 'libelf1']));
  });

  it('labels the image, runs bin/netmon as root by default, and declares ports, state volume and environment', () => {
    expect(labels()).toEqual({
      'org.opencontainers.image.title': 'netmon',
      'org.opencontainers.image.description': rootPackage.description,
      'org.opencontainers.image.version': '${VERSION}',
      'org.opencontainers.image.revision': '${REVISION}',
      'org.opencontainers.image.source': '${SOURCE}',
      'org.opencontainers.image.licenses': rootPackage.license,
      'org.opencontainers.image.base.name': '${NODE_IMAGE}',
    });
    const args = inStage(RUNTIME, 'ARG').map((a) => a.args.split('=')[0]);
    expect(args.sort()).toEqual(['NODE_IMAGE', 'REVISION', 'SOURCE', 'VERSION']);
    const one = (cmd: string) => inStage(RUNTIME, cmd).map((i) => i.args);
    expect(one('USER')).toEqual(['root']);
    expect(one('ENTRYPOINT')).toEqual(['["/opt/netmon/bin/netmon"]']);
    expect(existsSync(path.join(out, JSON.parse(one('ENTRYPOINT')[0])[0]))).toBe(true);
    expect(one('CMD')).toEqual(['["run", "--zxporter"]']);
    expect(one('WORKDIR')).toEqual(['/opt/netmon']);
    expect(one('EXPOSE')).toEqual(['8081 9464']);
    expect(one('VOLUME')).toEqual(['/var/lib/netmon']);
    expect(one('ENV')).toEqual(['NODE_ENV=production']);
    expect(one('HEALTHCHECK')).toEqual(['NONE']);
    // The shipped pipelines use that state directory and those ports.
    const k8s = readFileSync(path.join(stage, 'configs/kubernetes.yaml'), 'utf8');
    expect(k8s).toContain('${env:NETMON_STATE_DIR:-/var/lib/netmon}');
    expect(k8s).toMatch(/:9464\b/);
    expect(k8s).toMatch(/:8081\b/);
  });
});

// --- .dockerignore -----------------------------------------------------------------------------------------

/** Docker's context filter: patterns as Go's filepath.Match plus **, a path excluded when it or a folder
 * above it matches, `!` re-including, the last matching line winning. */
function dockerignore(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const glob = (negate ? l.slice(1) : l).replace(/^\//, '');
      let re = '';
      for (let i = 0; i < glob.length; i++) {
        const c = glob[i];
        if (c === '*' && glob[i + 1] === '*') {
          i++;
          if (glob[i + 1] === '/') {
            i++;
            re += '(?:.*/)?';
          } else re += '.*';
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (file) => {
    const parts = file.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (prefixes.some((p) => r.re.test(p))) excluded = !r.negate;
    return excluded;
  };
}

describe('.dockerignore', () => {
  const ignored = dockerignore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));

  it('sends what npm ci and npm run build read, and the scripts the Dockerfile runs', async () => {
    const ws = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] })
      .workspaces;
    const tsconfig = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')) as {
      references: { path: string }[];
    };
    const needed = [
      'package.json',
      'package-lock.json',
      '.node-version',
      'tsconfig.json',
      'tsconfig.base.json',
      'bin/netmon',
      'scripts/bootstrap.sh',
      'scripts/image-stage.mjs',
      'scripts/image-runtime.sh',
      'native/binding.gyp',
      'native/bpf/flows.bpf.c',
      'native/cc/addon.cc',
      'packages/agent/src/tools/bundle.ts',
      ...ws.map((w) => `${w}/package.json`),
      ...tsconfig.references.map((r) => `${r.path}/tsconfig.json`),
      ...readdirSync(path.join(ROOT, 'configs'))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => `configs/${f}`),
    ];
    // The files the bundle copies as assets (module-relative URLs in the built packages).
    for (const f of walk(path.join(ROOT, 'packages')).files) {
      if (!/^[a-z]+\/dist\/(?!bundle\/).*\.js$/.test(f)) continue;
      const source = readFileSync(path.join(ROOT, 'packages', f), 'utf8');
      for (const m of source.matchAll(/new URL\((['"])(\.{1,2}\/[^'"]+)\1,\s*import\.meta\.url\)/g)) {
        const file = path.resolve(ROOT, 'packages', path.dirname(f), m[2]);
        if (statSync(file, { throwIfNoEntry: false })?.isFile()) needed.push(path.relative(ROOT, file));
      }
    }
    expect(needed.length).toBeGreaterThan(20);
    for (const f of needed) {
      expect(existsSync(path.join(ROOT, f)), f).toBe(true);
      expect(ignored(f), `${f} is left out of the build context`).toBe(false);
    }
    // Every tracked file the build could read: TypeScript and C sources of the packages and the addon.
    const { stdout } = await run('git', ['ls-files', 'packages', 'native'], { cwd: ROOT });
    const tracked = stdout.split('\n').filter((f) => /\.(?:ts|cc|h|c|gyp|json|proto)$/.test(f));
    expect(tracked.filter(ignored)).toEqual([]);
  });

  it('leaves out node_modules, build output, .git, local tools and what the image does not need', () => {
    for (const f of [
      'node_modules/typescript/package.json',
      'packages/core/node_modules/x/package.json',
      'native/node_modules/node-addon-api/package.json',
      'packages/agent/dist/bundle/netmon.js',
      'native/dist/index.js',
      'native/build/Release/netmon_native.node',
      'packages/core/dist/.tsbuildinfo',
      '.git/HEAD',
      '.tools/bin/node',
      'test/image.test.ts',
      'bench/footprint/run.ts',
      'docs/operations.md',
      'charts/netmon/Chart.yaml',
      'configs/examples/replay.yaml',
      'scripts/lockfile.test.ts',
    ]) {
      expect(ignored(f), f).toBe(true);
    }
  });
});

// --- scripts/image-runtime.sh ------------------------------------------------------------------------------

const root = process.geteuid?.() === 0;
if (!root && process.env.NETMON_REQUIRE_PRIVILEGED === '1') {
  throw new Error('NETMON_REQUIRE_PRIVILEGED=1 but not root: image-runtime.sh chowns the state directory');
}

describe('scripts/image-runtime.sh (the runtime stage)', () => {
  it.skipIf(!root)(
    "creates the netmon user (65532) and a state directory both users write; apt resolves the Dockerfile's packages",
    async () => {
      const prefix = await tmpDir();
      try {
        mkdirSync(path.join(prefix, 'etc'));
        writeFileSync(path.join(prefix, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
        writeFileSync(path.join(prefix, 'etc/group'), 'root:x:0:\n');
        writeFileSync(path.join(prefix, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n');
        writeFileSync(path.join(prefix, 'etc/gshadow'), 'root:*::\n');
        const pkgs = runtimePackages();
        const r = await run('bash', [
          path.join(ROOT, 'scripts/image-runtime.sh'),
          '--prefix',
          prefix,
          '--simulate',
          ...pkgs,
        ]);
        expect(r.stderr).toBe('');
        expect(r.stdout).toContain(`apt would install ${pkgs.join(' ')}`);
        expect(readFileSync(path.join(prefix, 'etc/passwd'), 'utf8')).toContain(
          'netmon:x:65532:65532:netmon (no kernel access):/nonexistent:/usr/sbin/nologin\n',
        );
        expect(readFileSync(path.join(prefix, 'etc/group'), 'utf8')).toContain('netmon:x:65532:\n');
        const st = statSync(path.join(prefix, 'var/lib/netmon'));
        expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) }).toEqual({
          uid: 65532,
          gid: 0,
          mode: '775',
        });
        // A package apt does not know fails the step.
        const bad = await run('bash', [
          path.join(ROOT, 'scripts/image-runtime.sh'),
          '--prefix',
          prefix,
          '--simulate',
          'libnetmon-no-such-package0',
        ]).catch((e) => e);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain('apt cannot install libnetmon-no-such-package0');
      } finally {
        await rm(prefix, { recursive: true, force: true });
      }
    },
  );
});

// --- scripts/bootstrap.sh --build-deps-only (the build stage) -------------------------------------------

describe('scripts/bootstrap.sh --build-deps-only (the build stage)', () => {
  it("asks apt only for the build's packages: a part of bootstrap's one list, with the addon's compilers and libraries", async () => {
    // A scratch checkout with bootstrap.sh alone: it stops after apt and Node, at the missing lockfile.
    const dir = await tmpDir();
    try {
      mkdirSync(path.join(dir, 'scripts'));
      mkdirSync(path.join(dir, 'bin'));
      cpSync(path.join(ROOT, 'scripts/bootstrap.sh'), path.join(dir, 'scripts/bootstrap.sh'));
      cpSync(path.join(ROOT, '.node-version'), path.join(dir, '.node-version'));
      // dpkg-query answers "installed" for everything and records what it was asked.
      const asked = path.join(dir, 'asked');
      writeFileSync(
        path.join(dir, 'bin/dpkg-query'),
        `#!/bin/sh\nshift 2\nfor p in "$@"; do echo "$p" >> ${JSON.stringify(asked)}; echo "$p installed"; done\n`,
      );
      chmodSync(path.join(dir, 'bin/dpkg-query'), 0o755);
      // This checkout's Node (with its headers), so bootstrap takes it and fetches nothing.
      const nodeHome = path.dirname(path.dirname(realpathSync(process.execPath)));
      const env = { PATH: `${dir}/bin:${nodeHome}/bin:/usr/bin:/bin`, HOME: dir };
      const packagesFor = async (args: string[]) => {
        writeFileSync(asked, '');
        const r = await run('bash', [path.join(dir, 'scripts/bootstrap.sh'), ...args], { env }).catch(
          (e) => e,
        );
        expect(r.stderr).toContain('package-lock.json is missing');
        return readFileSync(asked, 'utf8').trim().split('\n');
      };
      const all = await packagesFor(['--no-build']);
      const build = await packagesFor(['--build-deps-only', '--no-build']);
      expect(build.length).toBeLessThan(all.length);
      for (const p of build) expect(all).toContain(p);
      expect(build).toEqual(
        expect.arrayContaining([
          'make',
          'g++',
          'python3',
          'pkg-config',
          'clang',
          'llvm',
          'libbpf-dev',
          'libmnl-dev',
        ]),
      );
      for (const testOnly of ['prometheus', 'golang-go', 'dnsmasq-base'])
        expect(build).not.toContain(testOnly);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

// --- scripts/image-build.sh and the make image target ----------------------------------------------------

describe('make image (scripts/image-build.sh)', () => {
  let bin: string;
  let tools: string;
  beforeAll(async () => {
    bin = await tmpDir();
    // A PATH with only what the script and make use: no docker or podman of this machine's is ever reached.
    tools = await tmpDir();
    for (const t of ['bash', 'sh', 'make', 'git', 'sed', 'head', 'dirname', 'basename', 'readlink', 'awk']) {
      const { stdout } = await run('sh', ['-c', `command -v ${t}`]);
      symlinkSync(stdout.trim(), path.join(tools, t));
    }
    // Stand-in engines: one whose daemon is down, one that records its build command.
    writeFileSync(
      path.join(bin, 'down'),
      '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2\nexit 1\n',
    );
    for (const name of ['docker', 'podman']) {
      writeFileSync(
        path.join(bin, name),
        `#!/bin/sh\n[ "$1" = info ] && exit 0\nprintf '%s\\n' "$@" > ${JSON.stringify(path.join(bin, `${name}.args`))}\n`,
      );
    }
    for (const f of ['down', 'docker', 'podman']) chmodSync(path.join(bin, f), 0o755);
  });
  afterAll(async () => {
    for (const d of [bin, tools]) if (d) await rm(d, { recursive: true, force: true });
  });

  const image = (args: string[], engines = false) =>
    run(path.join(tools, 'bash'), [path.join(ROOT, 'scripts/image-build.sh'), ...args], {
      cwd: os.tmpdir(),
      env: { PATH: engines ? `${bin}:${tools}` : tools, HOME: os.tmpdir() },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e) => e as { code: number; stdout: string; stderr: string },
    );
  const make = (args: string[]) =>
    run(
      path.join(tools, 'make'),
      ['-s', '-f', path.join(ROOT, 'test/testdata/image/image.mk'), 'image', `ROOT=${ROOT}`, ...args],
      {
        cwd: os.tmpdir(),
        // A VERSION in the environment is not the image's version.
        env: { PATH: `${bin}:${tools}`, HOME: os.tmpdir(), VERSION: 'from-the-environment' },
      },
    );
  const recorded = (name: string) =>
    readFileSync(path.join(bin, `${name}.args`), 'utf8')
      .trimEnd()
      .split('\n');

  it('fails with a clear message when no engine runs', async () => {
    const down = await image(['--engine', path.join(bin, 'down')]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`no container engine: ${path.join(bin, 'down')} info failed`);
    expect(down.stderr).toContain('Cannot connect to the Docker daemon');
    const none = await image([]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no container engine: neither docker nor podman is on PATH');
  });

  it('builds the Dockerfile with the version, revision and tag of this checkout', async () => {
    const r = await image([], true);
    expect(r.stderr ?? '').toBe('');
    const args = recorded('docker');
    expect(args.slice(0, 5)).toEqual([
      'build',
      '-f',
      path.join(ROOT, 'Dockerfile'),
      '-t',
      `netmon:${agentVersion}`,
    ]);
    expect(args).toContain(`VERSION=${agentVersion}`);
    expect(args.find((a) => a.startsWith('REVISION='))).toMatch(/^REVISION=[0-9a-f]{40}(-dirty)?$/);
    expect(args.at(-1)).toBe(ROOT);
    expect(args).not.toContain('--format');
  });

  it('passes the make variables given on its command line, and podman gets the docker image format', async () => {
    await make([
      `ENGINE=${path.join(bin, 'podman')}`,
      'VERSION=9.8.7',
      'IMAGE=registry.example/netmon:test',
      'REVISION=abc123',
      'NODE_IMAGE=node:24.21.0-bookworm-slim',
    ]);
    const args = recorded('podman');
    expect(args.slice(0, 5)).toEqual([
      'build',
      '-f',
      path.join(ROOT, 'Dockerfile'),
      '-t',
      'registry.example/netmon:test',
    ]);
    expect(args).toEqual(
      expect.arrayContaining([
        'VERSION=9.8.7',
        'REVISION=abc123',
        'NODE_IMAGE=node:24.21.0-bookworm-slim',
        '--format',
        'docker',
      ]),
    );
    await make([]);
    expect(recorded('docker')).toContain(`VERSION=${agentVersion}`);
  });

  it("is the Makefile's image target", () => {
    const makefile = readFileSync(path.join(ROOT, 'Makefile'), 'utf8');
    const snippet = readFileSync(path.join(ROOT, 'test/testdata/image/image.mk'), 'utf8');
    for (const line of snippet.split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
      expect(makefile, 'paste test/testdata/image/image.mk into the Makefile').toContain(line);
    }
  });
});
