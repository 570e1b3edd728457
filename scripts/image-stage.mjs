#!/usr/bin/env node
// Assembles the container image's runtime tree from this checkout's build (`npm run build` done): what
// `netmon` needs to run, and nothing else — no TypeScript, no development dependencies, no test data. The
// Dockerfile's build stage runs it, and test/image.test.ts runs it on this checkout and runs the result.
//
//   node scripts/image-stage.mjs OUT        writes OUT/opt/netmon (OUT/opt/netmon must not exist yet)
//
// OUT/opt/netmon/
//   bin/netmon                      the launcher, unchanged: it finds the bundle relative to itself and
//                                   node on PATH (the base image's /usr/local/bin/node)
//   packages/agent/dist/bundle/     the agent as one esbuild bundle (netmon.js, core.js, chunks, assets/)
//   node_modules/@netmon/native/    package.json, dist/*.js, build/Release/netmon_native.node and the BPF
//                                   objects flows.bpf.o and dns.bpf.o (the addon finds them beside itself)
//   node_modules/@grpc/grpc-js, …   grpc-js and everything it depends on, read from package-lock.json,
//                                   without TypeScript, source maps and the packages' own tests
//   configs/*.yaml                  the shipped pipelines (`netmon run --zxporter` runs devzero.yaml); not
//                                   configs/examples/, which replay test data that stays in the source tree
//   LICENSE                         when the checkout has one (each npm package keeps its own)
// The bundle leaves exactly two packages outside it (packages/agent/src/tools/bundle.ts says why):
// @netmon/native and @grpc/grpc-js; Node finds them in the node_modules above the bundle.
//
// The Node that runs this script is the one the image runs (the same base image), so it is checked against
// package.json's "engines" here, at build time, rather than by a crash in a cluster.
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const PREFIX = 'opt/netmon';

function die(message) {
  process.stderr.write(`image-stage: ${message}\n`);
  process.exit(1);
}

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** Files Node never reads at run time: TypeScript (sources and declarations) and source maps. */
const DEV_ONLY_FILE = /\.(?:[cm]?ts|map)$/;
/** A package's own tests (the @protobufjs/* packages ship theirs). */
const TEST_DIR = /^(?:test|tests|__tests__)$/;

/** Copies a file or tree, leaving out DEV_ONLY_FILE files, test folders and the `skip` paths. */
function copy(from, to, skip = []) {
  cpSync(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => {
      if (skip.includes(src)) return false;
      const dir = statSync(src).isDirectory();
      return dir ? !TEST_DIR.test(path.basename(src)) || src === from : !DEV_ONLY_FILE.test(src);
    },
  });
}

function checkNode() {
  const range = readJson(path.join(ROOT, 'package.json')).engines?.node ?? '';
  const min = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(range);
  if (!min) die(`package.json's engines.node is '${range}'; this script understands '>=X.Y.Z' only`);
  const have = process.versions.node.split('.').map(Number);
  const want = min.slice(1).map(Number);
  const cmp = have[0] - want[0] || have[1] - want[1] || have[2] - want[2];
  if (cmp < 0) {
    die(
      `the image would run Node ${process.versions.node}, older than package.json's engines (${range}): ` +
        `build with a newer base, e.g. --build-arg NODE_IMAGE=node:${want.join('.')}-bookworm-slim`,
    );
  }
}

/**
 * The lockfile entries (paths like node_modules/@grpc/grpc-js) of `name` and everything it needs at run
 * time, found as Node finds them: a dependency in the dependent's own node_modules first, then in each
 * folder above. Optional dependencies npm did not install (another platform) and optional peers are left
 * out, and so are type declarations; a required one missing from the lockfile is an error.
 */
function closure(lock, name) {
  const packages = lock.packages ?? {};
  const find = (from, dep) => {
    let dir = from;
    for (;;) {
      const key = `${dir ? `${dir}/` : ''}node_modules/${dep}`;
      if (packages[key]) return key;
      if (!dir) return undefined;
      const i = dir.lastIndexOf('/node_modules/');
      dir = i < 0 ? '' : dir.slice(0, i);
    }
  };
  const seen = new Set();
  const visit = (key, via) => {
    // Type declarations (@types/*, which protobufjs lists among its dependencies): nothing Node loads.
    if (seen.has(key) || /(^|\/)node_modules\/@types\//.test(key)) return;
    const entry = packages[key];
    if (entry.link) die(`${key} (needed by ${via}) is a workspace link, not a package from the registry`);
    if (entry.dev) die(`package-lock.json marks ${key} (needed by ${via}) as a development dependency`);
    seen.add(key);
    const optional = new Set(Object.keys(entry.optionalDependencies ?? {}));
    const peerMeta = entry.peerDependenciesMeta ?? {};
    const deps = [
      ...Object.keys(entry.dependencies ?? {}),
      ...optional,
      ...Object.keys(entry.peerDependencies ?? {}).filter((d) => !peerMeta[d]?.optional),
    ];
    for (const dep of deps) {
      const found = find(key, dep);
      if (found && existsSync(path.join(ROOT, found))) visit(found, key);
      else if (!optional.has(dep))
        die(`${dep}, a dependency of ${key}, is not in package-lock.json or not installed`);
    }
  };
  const start = find('', name);
  if (!start) die(`${name} is not in package-lock.json`);
  visit(start, 'the bundle');
  return [...seen].sort();
}

function du(dir) {
  let bytes = 0;
  let files = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      bytes += statSync(path.join(e.parentPath, e.name)).size;
      files++;
    }
  }
  return { bytes, files };
}

/** Folders that held only TypeScript (e.g. grpc-js's src/): nothing to ship. */
function removeEmptyDirs(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) removeEmptyDirs(path.join(dir, e.name));
  }
  if (readdirSync(dir).length === 0) rmdirSync(dir);
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function main() {
  const [out, ...rest] = process.argv.slice(2);
  if (!out || rest.length) die('usage: node scripts/image-stage.mjs OUT (writes OUT/opt/netmon)');
  const dest = path.resolve(out, PREFIX);
  if (existsSync(dest)) die(`${dest} exists already: give an empty or new OUT`);
  checkNode();

  const bundle = 'packages/agent/dist/bundle';
  const native = ['native/dist/index.js', 'native/build/Release/netmon_native.node'].concat(
    ['flows.bpf.o', 'dns.bpf.o'].map((o) => `native/build/Release/${o}`),
  );
  const missing = [`${bundle}/netmon.js`, `${bundle}/core.js`, ...native].filter(
    (f) => !existsSync(path.join(ROOT, f)),
  );
  if (missing.length) die(`not built (${missing.join(', ')} missing): run 'npm run build' in ${ROOT} first`);

  mkdirSync(dest, { recursive: true });
  copy(path.join(ROOT, 'bin/netmon'), path.join(dest, 'bin/netmon'));
  copy(path.join(ROOT, bundle), path.join(dest, bundle));

  // @netmon/native: its package.json without the source-only export condition (src/ is not shipped) and
  // without scripts (nothing is built here), its compiled module, the addon and the BPF objects.
  const nativeDest = path.join(dest, 'node_modules/@netmon/native');
  const pkg = readJson(path.join(ROOT, 'native/package.json'));
  const { name, version, type, license, description } = pkg;
  mkdirSync(nativeDest, { recursive: true });
  writeFileSync(
    path.join(nativeDest, 'package.json'),
    `${JSON.stringify({ name, version, type, license, description, exports: { '.': './dist/index.js' } }, null, 2)}\n`,
  );
  for (const f of native) copy(path.join(ROOT, f), path.join(nativeDest, f.slice('native/'.length)));

  // The bundle's other external, @grpc/grpc-js, and what it needs, as npm ci installed them.
  const keys = closure(readJson(path.join(ROOT, 'package-lock.json')), '@grpc/grpc-js');
  for (const key of keys) {
    const from = path.join(ROOT, key);
    // A package's own node_modules holds other lockfile entries, copied (or not) on their own.
    copy(from, path.join(dest, key), [path.join(from, 'node_modules')]);
  }

  for (const f of readdirSync(path.join(ROOT, 'configs'))) {
    if (f.endsWith('.yaml')) copy(path.join(ROOT, 'configs', f), path.join(dest, 'configs', f));
  }
  if (existsSync(path.join(ROOT, 'LICENSE'))) copy(path.join(ROOT, 'LICENSE'), path.join(dest, 'LICENSE'));

  removeEmptyDirs(dest);
  const all = du(dest);
  const parts = [
    ['bundle', du(path.join(dest, bundle)).bytes],
    ['@netmon/native', du(nativeDest).bytes],
    [
      `@grpc/grpc-js and its ${keys.length - 1} dependencies`,
      du(path.join(dest, 'node_modules')).bytes - du(nativeDest).bytes,
    ],
  ];
  process.stdout.write(
    `image-stage: ${dest}: ${all.files} files, ${mib(all.bytes)} (${parts.map(([n, b]) => `${n} ${mib(b)}`).join(', ')})\n`,
  );
}

main();
