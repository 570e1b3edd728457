// npm run build, last step: the agent as one bundle in packages/agent/dist/bundle/, which bin/netmon runs.
//
// Why: Node keeps, per loaded module, its source text, a module record and the loader's bookkeeping, and
// runs every package's top level. The agent from the packages' dist/ loads ~1,900 modules (the Kubernetes
// client alone ~870); idle it used 133 MiB RSS where the same code bundled uses 93 MiB (both with bin/netmon's
// young generation; docs/PERFORMANCE.md, "Agent footprint"). esbuild keeps what is reachable and, with code splitting, keeps each component's
// `await import()` a separate chunk, so a config still loads only the components it names.
//
// What a bundle changes, and how it is kept right:
// - Files found next to a module (`new URL('<relative path>', import.meta.url)`) are copied into assets/ and
//   the URL rewritten, since a chunk does not sit where its source module did.
// - `createRequire(import.meta.url)('../package.json')` (the version) becomes the JSON itself.
// - @netmon/native stays outside: its addon and BPF objects are found next to its own dist/.
// - @grpc/grpc-js stays outside: the OTLP exporter library loads it with a require() of its own making,
//   which no bundler can see, and grpc-js objects (Metadata, credentials) only work with the copy that
//   made them. Loaded from node_modules, it is one copy for everyone, and only with otlp or devzero.
// - @netmon/core is a second entry (core.js), and the bundle tells the plugin loader where it is, so a plugin
//   that imports @netmon/core gets the running agent's classes, not a second copy.
// - CommonJS dependencies that require() Node's built-ins get a `require` made by createRequire.
// - zod's messages in other languages are left out (below).
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';

const agent = path.resolve(import.meta.dirname, '../..');
const root = path.resolve(agent, '../..');
const outdir = path.join(agent, 'dist/bundle');

const ASSET_URL = /new URL\((['"])(\.{1,2}\/[^'"]+)\1,\s*import\.meta\.url\)/g;
const PACKAGE_JSON = /createRequire\(import\.meta\.url\)\((['"])\.\.\/package\.json\1\)/g;

/** Asset name in assets/ → the file it was copied from. */
const assets = new Map<string, string>();

/** Rewrites the module-relative files and the package.json read of our own packages' built modules. */
const relocate: Plugin = {
  name: 'netmon-relocate',
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/][a-z]+[\\/]dist[\\/].*\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return undefined;
      const dir = path.dirname(args.path);
      const contents = source
        .replace(ASSET_URL, (whole, _quote: string, rel: string) => {
          const file = path.resolve(dir, rel);
          // A directory (test fixtures) is not an asset; leave the expression as it was.
          if (!statSync(file, { throwIfNoEntry: false })?.isFile()) return whole;
          const name = path.basename(file);
          const owner = assets.get(name);
          if (owner !== undefined && owner !== file) {
            throw new Error(`two assets named ${name}: ${owner} and ${file}; rename one`);
          }
          assets.set(name, file);
          mkdirSync(path.join(outdir, 'assets'), { recursive: true });
          copyFileSync(file, path.join(outdir, 'assets', name));
          return `new URL(${JSON.stringify(`./assets/${name}`)}, import.meta.url)`;
        })
        .replace(PACKAGE_JSON, () => readFileSync(path.resolve(dir, '../package.json'), 'utf8').trim());
      return { contents, loader: 'js' };
    });
  },
};

/**
 * zod's `z` namespace re-exports its error messages in ~60 languages, so all of them are bundled and parsed;
 * netmon writes its own messages and never switches zod's locale: only English is kept (~270 KiB less).
 */
const zodEnglishOnly: Plugin = {
  name: 'netmon-zod-english',
  setup(b) {
    b.onResolve({ filter: /[\\/]locales[\\/]index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
        ? { path: path.resolve(path.dirname(args.importer), args.path), namespace: 'zod-locales' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(path.join(path.dirname(args.path), 'en.js'))};`,
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

rmSync(outdir, { recursive: true, force: true });
const started = performance.now();
const result = await build({
  entryPoints: {
    netmon: path.join(agent, 'dist/bundle-entry.js'),
    core: path.join(root, 'packages/core/dist/index.js'),
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  external: ['@netmon/native', '@grpc/grpc-js'],
  // Whitespace and syntax only: stack traces keep the source's names. keepNames: messages name classes
  // (`expected a FlowBatch`), and the bundler renames those that collide across modules.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  // Non-ASCII text escaped: one such character would make V8 hold a whole chunk's source as two-byte text.
  charset: 'ascii',
  legalComments: 'none',
  banner: {
    js: "import { createRequire as __netmonRequire } from 'node:module'; const require = __netmonRequire(import.meta.url);",
  },
  plugins: [relocate, zodEnglishOnly],
  metafile: true,
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
writeFileSync(path.join(outdir, 'package.json'), '{ "type": "module" }\n');
// Which packages each output file holds, beside (not in) the bundle: a module hook sees the bundle load
// chunk-XXXX.js, not the Kubernetes client, so the test that checks what a command loads
// (test/footprint-imports.test.ts) reads this to name what those chunks are.
const packagesByFile: Record<string, string[]> = {};
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  const packages = new Set<string>();
  for (const input of Object.keys(output.inputs)) {
    // The innermost node_modules names the package (a dependency's own copy of another one included).
    const name = [...input.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)].pop()?.[1];
    if (name !== undefined) packages.add(name);
  }
  packagesByFile[path.basename(file)] = [...packages].sort();
}
writeFileSync(path.join(agent, 'dist/bundle-packages.json'), `${JSON.stringify(packagesByFile, null, 1)}\n`);
process.stdout.write(
  `bundled the agent into ${path.relative(root, outdir)}/ (${Object.keys(result.metafile.outputs).length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB) in ${Math.round(performance.now() - started)} ms\n`,
);
