// Custom processors as plain functions. A plugin module (a file path or an npm package named in the
// config) default-exports either a function over a batch or an object with `process` and optional
// `start`/`shutdown`/`mutates`; the `plugin` processor loads it, `processorFromFunction` wraps it.
import { createRequire, registerHooks } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Batch, Processor, ProcessorFactory, Signal, Stability } from './component.js';

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

/** Accepts what a plugin module default-exports and checks its shape. */
export function toPluginDefinition(exported: unknown, where: string): PluginDefinition {
  if (typeof exported === 'function') return { process: exported as ProcessFunction };
  if (
    typeof exported === 'object' &&
    exported !== null &&
    typeof (exported as PluginDefinition).process === 'function'
  ) {
    return exported as PluginDefinition;
  }
  throw new Error(
    `${where} must default-export a function (batch, ctx) => batch, or an object with a process function`,
  );
}

/** Imports a plugin module: a path (relative to the config file's folder) or a package name. */
export async function loadPluginModule(spec: string, configDir: string): Promise<PluginDefinition> {
  const isPath = spec.startsWith('.') || path.isAbsolute(spec);
  let url: string;
  try {
    url = isPath ? pathToFileURL(path.resolve(configDir, spec)).href : resolvePackage(spec, configDir);
  } catch (err) {
    throw new Error(`cannot load plugin module "${spec}": ${(err as Error).message}`);
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new Error(`cannot load plugin module "${spec}": ${(err as Error).message}`);
  }
  return toPluginDefinition(mod.default, `plugin module "${spec}"`);
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
