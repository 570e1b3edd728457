// Custom processors as plain functions. A plugin module (a file path or an npm package named in the
// config) default-exports either a function over a batch or an object with `process` and optional
// `start`/`shutdown`/`mutates`; the `plugin` processor loads it, `processorFromFunction` wraps it.
import { access, readdir } from 'node:fs/promises';
import { createRequire, registerHooks } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Batch, Processor, ProcessorFactory, Signal, Stability } from './component.js';
import { didYouMean, nearest } from './config/suggest.js';

export interface PluginContext {
  /** The component id, e.g. `plugin/ports`. */
  id: string;
  /** The `options` block from the config, as written. */
  options: Record<string, unknown>;
  logger: Logger;
}

export type ProcessFunction<B extends Batch = Batch> = (
  batch: B,
  ctx: PluginContext,
) => B | null | undefined | Promise<B | null | undefined>;

export interface PluginDefinition<B extends Batch = Batch> {
  /** True when `process` changes the batch it gets; it then gets a private copy. */
  mutates?: boolean;
  start?(ctx: PluginContext): void | Promise<void>;
  process: ProcessFunction<B>;
  shutdown?(ctx: PluginContext): void | Promise<void>;
}

/** Typing help for plugin authors: `export default definePlugin({ process(batch) { … } })`. */
export const definePlugin = <B extends Batch = Batch>(def: PluginDefinition<B>): PluginDefinition<B> => def;

/**
 * Accepts what a plugin module default-exports and checks its shape. `namedExports` (the module's other
 * exports) lets the error point at the usual slip: `export function process` without `export default`.
 */
export function toPluginDefinition(
  exported: unknown,
  where: string,
  namedExports?: readonly string[],
): PluginDefinition {
  if (typeof exported === 'function') return { process: exported as ProcessFunction };
  if (
    typeof exported === 'object' &&
    exported !== null &&
    typeof (exported as PluginDefinition).process === 'function'
  ) {
    return exported as PluginDefinition;
  }
  let found: string;
  if (exported === undefined && namedExports !== undefined) {
    found =
      namedExports.length > 0
        ? `; it has no default export, only named ones (${namedExports.join(', ')})${namedExports.includes('process') ? ': write export default { process, … }' : ''}`
        : '; it exports nothing';
  } else if (typeof exported === 'object' && exported !== null) {
    const keys = Object.keys(exported);
    found = `; its default export is an object without a process function${keys.length > 0 ? ` (it has: ${keys.join(', ')})` : ''}`;
  } else if (exported === undefined) {
    found = '';
  } else {
    found = `; its default export is ${exported === null ? 'null' : `a ${typeof exported}`}`;
  }
  throw new Error(
    `${where} must default-export a function (batch, ctx) => batch, or an object with a process function${found}`,
  );
}

/** Imports a plugin module: a path (relative to the config file's folder) or a package name. */
export async function loadPluginModule(spec: string, configDir: string): Promise<PluginDefinition> {
  const isPath = spec.startsWith('.') || path.isAbsolute(spec);
  let url: string;
  try {
    if (isPath) {
      const file = path.resolve(configDir, spec);
      // Checked before importing: Node's "Cannot find module … imported from <netmon's own file>" names
      // the wrong file, and a near name in the folder is usually what was meant.
      await access(file).catch(async () => {
        const hint = await nearbyFiles(spec, file);
        throw new Error(`no file ${file}${hint ? `; ${hint}` : ''}`);
      });
      url = pathToFileURL(file).href;
    } else {
      url = resolvePackage(spec, configDir);
    }
  } catch (err) {
    throw new Error(`cannot load plugin module "${spec}": ${(err as Error).message}`);
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new Error(`cannot load plugin module "${spec}": ${(err as Error).message}`);
  }
  const named = Object.keys(mod).filter((k) => k !== 'default');
  return toPluginDefinition(mod.default, `plugin module "${spec}"`, named);
}

const MODULE_EXTENSION = /\.[mc]?[jt]s$/;

/**
 * `did you mean ./ports.mjs?` for a plugin file that is not there: the same name with an extension (ESM
 * imports need it), or a near name in the same folder. '' when there is none or the folder is unreadable.
 */
async function nearbyFiles(spec: string, file: string): Promise<string> {
  let entries: string[];
  try {
    entries = await readdir(path.dirname(file));
  } catch {
    return '';
  }
  const base = path.basename(file);
  const modules = entries.filter((e) => MODULE_EXTENSION.test(e));
  const stem = (name: string) => name.replace(MODULE_EXTENSION, '');
  const sameStem = modules.filter((e) => stem(e) === stem(base));
  const near = nearest(base, modules);
  const meant = sameStem.length > 0 ? sameStem : near.exact.length > 0 ? near.exact : near.close;
  // Shown as the user would write it in the config: in the spec's own folder.
  const dir = path.dirname(spec);
  return didYouMean(meant.map((e) => (dir.endsWith('/') ? `${dir}${e}` : `${dir}/${e}`)));
}

/**
 * Finds a package as an `import` written in a module in `configDir` would: ESM rules, so a package that
 * only exports an "import" condition is found. Then CommonJS rules (exports offering only "require"),
 * then netmon's own node_modules, so a plugin installed next to netmon works too.
 */
function resolvePackage(spec: string, configDir: string): string {
  // A directory URL as parent: Node's "imported from …" then names the config's folder, not a made-up file.
  const parentURL = pathToFileURL(`${path.resolve(configDir)}${path.sep}`).href;
  let esmError: Error;
  try {
    return resolveFrom(spec, parentURL);
  } catch (err) {
    esmError = err as Error;
  }
  try {
    return pathToFileURL(createRequire(parentURL).resolve(spec)).href;
  } catch {}
  try {
    return import.meta.resolve(spec);
  } catch {}
  if (esmError.message.startsWith('Cannot find package')) {
    throw new Error(
      `no package "${spec}" in node_modules of ${configDir} or of a folder above it (install it there, or give a file path starting with ./)`,
    );
  }
  throw esmError;
}

/**
 * `import.meta.resolve(spec, parent)` ignores its parent unless Node runs with
 * --experimental-import-meta-resolve; a resolve hook that swaps in the parent gets Node's own ESM resolver
 * (exports, conditions, subpaths) without the flag. The hook lives only for this synchronous call.
 */
function resolveFrom(spec: string, parentURL: string): string {
  const hooks = registerHooks({
    resolve: (specifier, context, nextResolve) =>
      nextResolve(specifier, specifier === spec ? { ...context, parentURL } : context),
  });
  try {
    return import.meta.resolve(spec, parentURL);
  } finally {
    hooks.deregister();
  }
}

/** Wraps a plugin definition as a processor instance. */
export function pluginProcessor(def: PluginDefinition, ctx: PluginContext): Processor {
  return {
    mutates: def.mutates === true,
    start: def.start ? () => def.start?.(ctx) : undefined,
    process: (batch) => def.process(batch, ctx),
    shutdown: def.shutdown ? () => def.shutdown?.(ctx) : undefined,
  };
}

/** Turns a function into a processor factory with its own type (for distributions and tests). */
export function processorFromFunction(
  type: string,
  def: PluginDefinition | ProcessFunction,
  opts: { description: string; stability?: Stability; signals?: readonly Signal[] } = { description: type },
): ProcessorFactory<{ options: Record<string, unknown> }> {
  const definition = toPluginDefinition(def, `processor "${type}"`);
  return {
    kind: 'processor',
    type,
    stability: opts.stability ?? 'development',
    description: opts.description,
    signals: opts.signals ?? ['flows'],
    config: z.strictObject({
      options: z
        .record(z.string(), z.unknown())
        .default({})
        .describe('Handed to the function as ctx.options.'),
    }),
    create: (settings, config) =>
      pluginProcessor(definition, { id: settings.id, options: config.options, logger: settings.logger }),
  };
}
