// Custom processors as plain functions. A plugin module (a file path or a package installed with netmon,
// named in the config) default-exports either a function over a batch or an object with `process` and optional
// `start`/`shutdown`/`mutates`; the `plugin` processor loads it, `processorFromFunction` wraps it.
import { existsSync, realpathSync } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { createRequire, registerHooks } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Batch, Processor, ProcessorFactory, Signal, Stability } from './component.js';
import { formatDuration } from './config/duration.js';
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

export interface PluginLoadOptions {
  /**
   * How long the module may take to load (its top-level code included), in ms: service::start_timeout.
   * The pending timer also keeps Node alive meanwhile: an import waiting on a promise that holds nothing
   * open would otherwise let the process exit 0 with nothing said. Unset: no deadline (the caller bounds it).
   */
  timeoutMs?: number;
  /**
   * The folder whose node_modules holds the packages a bare name may load: netmon's installation (the
   * folder whose node_modules holds @netmon/core). For tests.
   */
  installRoot?: string;
}

/**
 * Imports a plugin module: a file path (absolute, or relative to the config file's folder: ./x.mjs,
 * ../x.mjs) or the name of a package installed with netmon. Nothing else: a URL (data:, http:, file:, …)
 * would run code that no file on the node shows, and a node_modules near the config file is searched by
 * no one, as whoever can write to a config's folder or above it is not necessarily trusted to run code as
 * the agent.
 */
export async function loadPluginModule(
  spec: string,
  configDir: string,
  opts: PluginLoadOptions = {},
): Promise<PluginDefinition> {
  // Armed before anything else, so it fires no later than a deadline the caller arms after calling (the
  // validate hooks' own, of the same length): the problem then names the module, not only the component.
  const deadline = loadDeadline(opts.timeoutMs);
  try {
    let url: string;
    try {
      url = await deadline.race(locatePlugin(spec, configDir, opts.installRoot));
    } catch (err) {
      throw new Error(`cannot load plugin module ${describeSpec(spec)}: ${(err as Error).message}`);
    }
    await shareBundledCore();
    let mod: { default?: unknown };
    try {
      mod = (await deadline.race(import(url))) as { default?: unknown };
    } catch (err) {
      throw new Error(`cannot load plugin module "${spec}": ${(err as Error).message}`);
    }
    const named = Object.keys(mod).filter((k) => k !== 'default');
    return toPluginDefinition(mod.default, `plugin module "${spec}"`, named);
  } finally {
    deadline.clear();
  }
}

// RFC 3986's scheme: a letter, then letters, digits, +, - or . before the colon. No package name has one.
const URL_SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;
// npm's rules for a name (lower case, URL-safe, not starting with . or _), an optional @scope/, then an
// optional subpath the package exports.
const PACKAGE_SPEC = /^(?:@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*(?:\/[^\s]+)?$/;

/** The spec as errors may show it: a URL only by its scheme, as it may carry a password or a token. */
function describeSpec(spec: string): string {
  const scheme = URL_SCHEME.exec(spec);
  return scheme ? `(a ${scheme[1].toLowerCase()}: URL)` : `"${spec}"`;
}

async function locatePlugin(spec: string, configDir: string, installRoot?: string): Promise<string> {
  const scheme = URL_SCHEME.exec(spec);
  if (scheme) {
    if (scheme[1].toLowerCase() === 'file') {
      let file = '';
      try {
        file = fileURLToPath(spec);
      } catch {}
      throw new Error(`URLs are refused; write the path itself${file ? ` (${file})` : ''}`);
    }
    throw new Error(
      'URLs are refused; give a file path (absolute, or relative to the config file: ./x.mjs, ../x.mjs) or the name of a package installed with netmon',
    );
  }
  const isPath =
    path.isAbsolute(spec) || spec === '.' || spec === '..' || spec.startsWith('./') || spec.startsWith('../');
  if (isPath) {
    const file = path.resolve(configDir, spec);
    // Checked before importing: Node's "Cannot find module … imported from <netmon's own file>" names
    // the wrong file, and a near name in the folder is usually what was meant.
    await access(file).catch(async () => {
      const hint = await nearbyFiles(spec, file);
      throw new Error(`no file ${file}${hint ? `; ${hint}` : ''}`);
    });
    return pathToFileURL(file).href;
  }
  if (!PACKAGE_SPEC.test(spec)) {
    throw new Error(`not a file path (a path starts with ./, ../ or /: ./${spec}) nor a package name`);
  }
  return resolvePackage(spec, configDir, installRoot ?? netmonInstallRoot());
}

/**
 * Races each step of a load against one timer of `timeoutMs` (none when undefined). A module left behind
 * stays in Node's module map, still pending: nothing can cancel its top-level code.
 */
function loadDeadline(timeoutMs: number | undefined): {
  race<T>(step: Promise<T>): Promise<T>;
  clear(): void;
} {
  if (timeoutMs === undefined) return { race: (step) => step, clear: () => {} };
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `it did not finish loading within ${formatDuration(timeoutMs)} (service::start_timeout): its top-level code is still running or waiting (a top-level await that never settles?)`,
          ),
        ),
      timeoutMs,
    );
  });
  expired.catch(() => {});
  return {
    race: (step) => {
      step.catch(() => {});
      return Promise.race([step, expired]);
    },
    clear: () => clearTimeout(timer),
  };
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

/** `@scope/name` or `name`: the package a spec (perhaps with a subpath) names. */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/**
 * Finds a package installed with netmon: in `root`/node_modules, and there only. Resolved as an `import`
 * in `root` would be (ESM rules, so a package that exports only an "import" condition is found), then by
 * CommonJS rules (exports offering only "require"). The package must be in that node_modules itself:
 * Node's own lookup would go on to the node_modules of every folder above it.
 */
function resolvePackage(spec: string, configDir: string, root: string): string {
  const name = packageName(spec);
  const modules = path.join(root, 'node_modules');
  if (!existsSync(path.join(modules, name, 'package.json'))) {
    const planted = nearConfig(name, configDir);
    // `plugins/x.mjs` next to the config reads as package "plugins": say what was probably meant.
    const file = existsSync(path.resolve(configDir, spec)) ? `; did you mean ./${spec}?` : '';
    throw new Error(
      `no package "${name}" installed with netmon (in ${modules}); ${
        planted
          ? `a node_modules near the config file is not searched (${planted} is there): give the module's path instead if you trust it`
          : "install it there, or give the module's path (absolute, or relative to the config file: ./x.mjs, ../x.mjs)"
      }${file}`,
    );
  }
  // A directory URL as parent: Node's "imported from …" then names the folder, not a made-up file.
  const parentURL = pathToFileURL(`${path.resolve(root)}${path.sep}`).href;
  let esmError: Error;
  try {
    return resolveFrom(spec, parentURL);
  } catch (err) {
    esmError = err as Error;
  }
  try {
    return pathToFileURL(createRequire(parentURL).resolve(spec)).href;
  } catch {}
  throw esmError;
}

/** Where a node_modules in the config's folder or above it holds `name`, for the error; '' when none does. */
function nearConfig(name: string, configDir: string): string {
  for (let dir = path.resolve(configDir); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return '';
  }
}

let bundledCoreUrl: string | undefined;
let bundledCoreShared: Promise<unknown> | undefined;

/**
 * Called by the bundled agent (packages/agent/dist/bundle) with the URL of its own @netmon/core entry: a
 * plugin's `import '@netmon/core'` must get the running agent's classes (one FlowBatch, one registry), not
 * a second copy from node_modules, and the packages installed with netmon are then in the node_modules
 * that holds the bundle's own dependencies.
 */
export function setBundledCore(url: string): void {
  bundledCoreUrl = url;
}

/**
 * Points `@netmon/core` at the bundle's entry from the first plugin on (a resolve hook for the process),
 * and loads that entry first: plugins load at once, and a CommonJS plugin's require() of an ES module
 * still loading for another plugin would fail.
 */
function shareBundledCore(): Promise<unknown> | undefined {
  if (bundledCoreUrl === undefined || bundledCoreShared) return bundledCoreShared;
  const url = bundledCoreUrl;
  registerHooks({
    resolve: (specifier, context, nextResolve) =>
      specifier === '@netmon/core'
        ? { url, format: 'module', shortCircuit: true }
        : nextResolve(specifier, context),
  });
  bundledCoreShared = import(url);
  return bundledCoreShared;
}

let installRootCache: string | undefined;

/**
 * netmon's installation: the nearest folder above @netmon/core whose node_modules holds @netmon/core
 * (the workspace root in a checkout, the agent's package in an npm install), or for the bundled agent the
 * nearest folder above the bundle whose node_modules holds @netmon/native. Falls back to the core package's own folder
 * (its node_modules) when none is found.
 */
function netmonInstallRoot(): string {
  if (installRootCache !== undefined) return installRootCache;
  if (bundledCoreUrl !== undefined) {
    // The bundle's own dependencies (@netmon/native, loaded from there) mark netmon's node_modules.
    const bundle = path.dirname(fileURLToPath(bundledCoreUrl));
    installRootCache = bundle;
    for (let dir = bundle; ; dir = path.dirname(dir)) {
      if (existsSync(path.join(dir, 'node_modules', '@netmon', 'native'))) {
        installRootCache = dir;
        break;
      }
      if (path.dirname(dir) === dir) break;
    }
    return installRootCache;
  }
  let core = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(core, 'package.json')) && path.dirname(core) !== core) {
    core = path.dirname(core);
  }
  const real = realpathOrEmpty(core);
  installRootCache = core;
  for (let dir = path.dirname(core); ; dir = path.dirname(dir)) {
    if (realpathOrEmpty(path.join(dir, 'node_modules', '@netmon', 'core')) === real) {
      installRootCache = dir;
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  return installRootCache;
}

function realpathOrEmpty(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return '';
  }
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
