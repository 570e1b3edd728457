import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlowBatch } from './batch/flow-batch.js';
import { loadPluginModule, processorFromFunction, toPluginDefinition } from './plugin.js';
import { describeConformance, testSettings } from './testkit/index.js';

const doubler = processorFromFunction(
  'double_tx',
  {
    mutates: true,
    process(batch, ctx) {
      const b = batch as FlowBatch;
      const factor = Number(ctx.options.factor ?? 2);
      for (let i = 0; i < b.length; i++) b.txBytes[i] *= factor;
      return b;
    },
  },
  { description: 'multiplies tx bytes, for tests' },
);

describeConformance(doubler, { config: { options: { factor: 3 } } });

describe('processorFromFunction', () => {
  it('turns a function into a processor with its own type and options', async () => {
    const p = await doubler.create(
      testSettings('processor', 'double_tx'),
      doubler.config.parse({ options: { factor: 3 } }),
      'flows',
    );
    const t = Date.parse('2026-01-01T00:00:00Z');
    const out = (await p.process(
      FlowBatch.from([
        { timeStart: t, timeEnd: t, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2', txBytes: 5 },
      ]),
    )) as FlowBatch;
    expect(out.txBytes[0]).toBe(15);
    expect(p.mutates).toBe(true);
  });

  it('rejects what a plugin module must not default-export', () => {
    expect(() => toPluginDefinition({ nope: 1 }, 'plugin module "x"')).toThrow(
      'plugin module "x" must default-export a function (batch, ctx) => batch, or an object with a process function',
    );
    expect(toPluginDefinition((b: unknown) => b, 'f').process).toBeTypeOf('function');
  });
});

describe('loadPluginModule by path', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-path-'));
    await mkdir(path.join(dir, 'plugins'));
    await writeFile(path.join(dir, 'plugins', 'ports.mjs'), 'export default (batch) => batch;\n');
    await writeFile(path.join(dir, 'plugins', 'notes.txt'), 'not a module\n');
    await writeFile(
      path.join(dir, 'named.mjs'),
      'export function process(b) { return b; }\nexport const x = 1;\n',
    );
    await writeFile(path.join(dir, 'number.mjs'), 'export default 42;\n');
    await writeFile(path.join(dir, 'object.mjs'), 'export default { run: () => {}, mutates: true };\n');
    await writeFile(path.join(dir, 'empty.mjs'), '\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a file relative to the config folder', async () => {
    expect((await loadPluginModule('./plugins/ports.mjs', dir)).process).toBeTypeOf('function');
  });

  it('names the file it looked for and the near name that exists', async () => {
    const missing = (spec: string) => path.resolve(dir, spec);
    await expect(loadPluginModule('./plugins/port.mjs', dir)).rejects.toThrow(
      `cannot load plugin module "./plugins/port.mjs": no file ${missing('./plugins/port.mjs')}; did you mean ./plugins/ports.mjs?`,
    );
    // ESM imports need the extension: the same name with one is what was meant.
    await expect(loadPluginModule('./plugins/ports', dir)).rejects.toThrow(
      `no file ${missing('./plugins/ports')}; did you mean ./plugins/ports.mjs?`,
    );
    await expect(loadPluginModule(path.join(dir, 'plugins', 'ports.js'), dir)).rejects.toThrow(
      `did you mean ${path.join(dir, 'plugins', 'ports.mjs')}?`,
    );
    // Nothing near (notes.txt is no module): the message ends with the file.
    await expect(loadPluginModule('./plugins/notes.mjs', dir)).rejects.toThrow(
      new RegExp(`no file ${missing('./plugins/notes.mjs')}$`),
    );
    await expect(loadPluginModule('./nowhere/x.mjs', dir)).rejects.toThrow(
      new RegExp(`no file ${missing('./nowhere/x.mjs')}$`),
    );
  });

  it('says what a module exports instead of a plugin', async () => {
    const start =
      'must default-export a function (batch, ctx) => batch, or an object with a process function';
    await expect(loadPluginModule('./named.mjs', dir)).rejects.toThrow(
      `plugin module "./named.mjs" ${start}; it has no default export, only named ones (process, x): write export default { process, … }`,
    );
    await expect(loadPluginModule('./number.mjs', dir)).rejects.toThrow(
      `plugin module "./number.mjs" ${start}; its default export is a number`,
    );
    await expect(loadPluginModule('./object.mjs', dir)).rejects.toThrow(
      `plugin module "./object.mjs" ${start}; its default export is an object without a process function (it has: run, mutates)`,
    );
    await expect(loadPluginModule('./empty.mjs', dir)).rejects.toThrow(
      `plugin module "./empty.mjs" ${start}; it exports nothing`,
    );
  });
});

describe('loadPluginModule by package name', () => {
  // `install` stands in for netmon's installation (its node_modules); `elsewhere` holds a config folder
  // with a node_modules above it, which must never be searched: whoever can write there could plant code.
  let install = '';
  let elsewhere = '';
  let configDir = '';
  const pkg = async (base: string, name: string, manifest: object, files: Record<string, string>) => {
    const dir = path.join(base, 'node_modules', name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', ...manifest }));
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await writeFile(path.join(dir, file), text);
    }
  };
  const marker = () => path.join(elsewhere, 'planted-plugin-ran');
  beforeAll(async () => {
    install = await mkdtemp(path.join(os.tmpdir(), 'netmon-install-'));
    elsewhere = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-'));
    configDir = path.join(elsewhere, 'conf', 'node-a');
    await mkdir(configDir, { recursive: true });
    await pkg(
      install,
      'esm-only-plugin',
      { type: 'module', exports: { '.': { import: './index.js' } } },
      { 'index.js': 'export default { process: (batch) => batch, mutates: false };\n' },
    );
    await pkg(
      install,
      'cjs-main-plugin',
      { main: 'lib/plugin.js' },
      { 'lib/plugin.js': 'module.exports = function double(batch) { return batch; };\n' },
    );
    await pkg(
      install,
      'require-only-plugin',
      { exports: { require: './index.cjs' } },
      { 'index.cjs': 'module.exports = { process: (batch) => batch };\n' },
    );
    await pkg(
      install,
      '@acme/scoped-plugin',
      { type: 'module', exports: { '.': './index.js', './extra': './extra.js' } },
      {
        'index.js': 'export default (b) => b;\n',
        'extra.js': 'export default function extra(b) { return b; }\n',
      },
    );
    // Planted above the config: it would leave a mark if it ever ran.
    await pkg(
      elsewhere,
      'planted-plugin',
      { type: 'module', main: 'index.js' },
      {
        'index.js': `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker())}, 'ran');\nexport default (b) => b;\n`,
      },
    );
  });
  afterAll(async () => {
    await rm(install, { recursive: true, force: true });
    await rm(elsewhere, { recursive: true, force: true });
  });

  it('loads an ESM-only package (exports with only an "import" condition) installed with netmon', async () => {
    const def = await loadPluginModule('esm-only-plugin', configDir, { installRoot: install });
    expect(def.process).toBeTypeOf('function');
    expect(def.mutates).toBe(false);
  });

  it('loads a CommonJS package with main, and one whose exports offer only "require"', async () => {
    const opts = { installRoot: install };
    expect((await loadPluginModule('cjs-main-plugin', configDir, opts)).process.name).toBe('double');
    expect((await loadPluginModule('require-only-plugin', configDir, opts)).process).toBeTypeOf('function');
  });

  it('loads a scoped package and a subpath it exports', async () => {
    const opts = { installRoot: install };
    expect((await loadPluginModule('@acme/scoped-plugin', configDir, opts)).process).toBeTypeOf('function');
    expect((await loadPluginModule('@acme/scoped-plugin/extra', configDir, opts)).process.name).toBe('extra');
  });

  it('finds packages in the node_modules of the running netmon', async () => {
    // pino is one of netmon's own dependencies; its default export happens to be a function.
    expect((await loadPluginModule('pino', configDir)).process.name).toBe('pino');
  });

  it('never searches a node_modules near the config file, and does not run what is there', async () => {
    for (const opts of [{ installRoot: install }, {}]) {
      await expect(loadPluginModule('planted-plugin', configDir, opts)).rejects.toThrow(
        `a node_modules near the config file is not searched (${path.join(elsewhere, 'node_modules', 'planted-plugin')} is there): give the module's path instead if you trust it`,
      );
    }
    await expect(access(marker())).rejects.toThrow('ENOENT');
  });

  it('names the package and where netmon looked when the package is not installed', async () => {
    await expect(loadPluginModule('no-such-plugin-pkg', configDir, { installRoot: install })).rejects.toThrow(
      `cannot load plugin module "no-such-plugin-pkg": no package "no-such-plugin-pkg" installed with netmon (in ${path.join(install, 'node_modules')}); install it there, or give the module's path (absolute, or relative to the config file: ./x.mjs, ../x.mjs)`,
    );
  });

  it('points at the file a path without ./ names', async () => {
    await mkdir(path.join(configDir, 'plugins'), { recursive: true });
    await writeFile(path.join(configDir, 'plugins', 'x.mjs'), 'export default (b) => b;\n');
    await expect(loadPluginModule('plugins/x.mjs', configDir, { installRoot: install })).rejects.toThrow(
      /^cannot load plugin module "plugins\/x.mjs": no package "plugins" installed with netmon .*; did you mean \.\/plugins\/x\.mjs\?$/,
    );
  });

  it('leaves the resolution of later imports alone', async () => {
    await loadPluginModule('esm-only-plugin', configDir, { installRoot: install });
    // The resolve hook is gone: from here (outside the stand-in installation) the package is not found.
    expect(() => import.meta.resolve('esm-only-plugin')).toThrow();
  });
});

describe('loadPluginModule refuses what is neither a path nor a package name', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-url-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const rule =
    'give a file path (absolute, or relative to the config file: ./x.mjs, ../x.mjs) or the name of a package installed with netmon';

  it.each([
    ['data:text/javascript,globalThis.__netmonPluginRan = 1; export default (b) => b;', 'data:'],
    ['http://127.0.0.1:9/plugin.mjs', 'http:'],
    ['https://deploy:s3cret-token@plugins.example.com/p.mjs', 'https:'],
    ['node:fs', 'node:'],
  ])('refuses the URL %s, naming only its scheme', async (spec, scheme) => {
    const err = (await loadPluginModule(spec, dir).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`cannot load plugin module (a ${scheme} URL): URLs are refused; ${rule}`);
    expect((globalThis as { __netmonPluginRan?: number }).__netmonPluginRan).toBeUndefined();
  });

  it('refuses a file: URL and says to write the path', async () => {
    await writeFile(path.join(dir, 'x.mjs'), 'export default (b) => b;\n');
    await expect(loadPluginModule(pathToFileURL(path.join(dir, 'x.mjs')).href, dir)).rejects.toThrow(
      `cannot load plugin module (a file: URL): URLs are refused; write the path itself (${path.join(dir, 'x.mjs')})`,
    );
  });

  it('refuses a relative path without ./ and says how to write it', async () => {
    await expect(loadPluginModule('.plugins/x.mjs', dir)).rejects.toThrow(
      'cannot load plugin module ".plugins/x.mjs": not a file path (a path starts with ./, ../ or /: ./.plugins/x.mjs) nor a package name',
    );
    await expect(loadPluginModule('Plugins/X Y.mjs', dir)).rejects.toThrow(
      'cannot load plugin module "Plugins/X Y.mjs": not a file path (a path starts with ./, ../ or /: ./Plugins/X Y.mjs) nor a package name',
    );
  });
});

describe('loadPluginModule deadline', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-slow-'));
    await writeFile(path.join(dir, 'never.mjs'), 'await new Promise(() => {});\nexport default (b) => b;\n');
    await writeFile(
      path.join(dir, 'slow.mjs'),
      'await new Promise((r) => setTimeout(r, 150));\nexport default (b) => b;\n',
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives up on a module whose top-level await never settles, naming it and the deadline', async () => {
    await expect(loadPluginModule('./never.mjs', dir, { timeoutMs: 100 })).rejects.toThrow(
      'cannot load plugin module "./never.mjs": it did not finish loading within 100ms (service::start_timeout): its top-level code is still running or waiting (a top-level await that never settles?)',
    );
  });

  it('waits for a slow module that finishes within the deadline', async () => {
    expect((await loadPluginModule('./slow.mjs', dir, { timeoutMs: 5000 })).process).toBeTypeOf('function');
  });

  it('holds the process open until the deadline instead of letting Node exit with nothing said', async () => {
    // A real process: with no timer of its own, the loader's pending import leaves Node's event loop
    // empty, and Node exits 0 without a word. Runs the built core (dist), as the agent does.
    const script = `
      const { loadPluginModule } = await import('@netmon/core');
      loadPluginModule('./never.mjs', ${JSON.stringify(dir)}, { timeoutMs: 300 }).then(
        () => process.stdout.write('loaded\\n'),
        (err) => { process.stderr.write(err.message + '\\n'); process.exitCode = 3; },
      );`;
    const r = await runNode(['--input-type=module', '-e', script]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'cannot load plugin module "./never.mjs": it did not finish loading within 300ms (service::start_timeout): its top-level code is still running or waiting (a top-level await that never settles?)\n',
    );
    expect(r.code).toBe(3);
  });
});

const REPO = path.resolve(import.meta.dirname, '../../..');

function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
