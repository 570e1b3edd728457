import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
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
  // A project folder with its own node_modules; the config sits in a subfolder, as packages are found
  // in the node_modules of the config's folder or of any folder above it.
  let root = '';
  let configDir = '';
  const pkg = async (name: string, manifest: object, files: Record<string, string>) => {
    const dir = path.join(root, 'node_modules', name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', ...manifest }));
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await writeFile(path.join(dir, file), text);
    }
  };
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-'));
    configDir = path.join(root, 'conf', 'node-a');
    await mkdir(configDir, { recursive: true });
    await pkg(
      'esm-only-plugin',
      { type: 'module', exports: { '.': { import: './index.js' } } },
      { 'index.js': 'export default { process: (batch) => batch, mutates: false };\n' },
    );
    await pkg(
      'cjs-main-plugin',
      { main: 'lib/plugin.js' },
      { 'lib/plugin.js': 'module.exports = function double(batch) { return batch; };\n' },
    );
    await pkg(
      'require-only-plugin',
      { exports: { require: './index.cjs' } },
      { 'index.cjs': 'module.exports = { process: (batch) => batch };\n' },
    );
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('loads an ESM-only package (exports with only an "import" condition)', async () => {
    const def = await loadPluginModule('esm-only-plugin', configDir);
    expect(def.process).toBeTypeOf('function');
    expect(def.mutates).toBe(false);
  });

  it('loads a CommonJS package with main, and one whose exports offer only "require"', async () => {
    expect((await loadPluginModule('cjs-main-plugin', configDir)).process.name).toBe('double');
    expect((await loadPluginModule('require-only-plugin', configDir)).process).toBeTypeOf('function');
  });

  it('names the package and the folder searched when the package is not installed', async () => {
    await expect(loadPluginModule('no-such-plugin-pkg', configDir)).rejects.toThrow(
      `cannot load plugin module "no-such-plugin-pkg": no package "no-such-plugin-pkg" in node_modules of ${configDir} or of a folder above it`,
    );
  });

  it('leaves the resolution of later imports alone', async () => {
    await loadPluginModule('esm-only-plugin', configDir);
    // The resolve hook is gone: from here (outside root) the package is not found.
    expect(() => import.meta.resolve('esm-only-plugin')).toThrow();
  });
});
