// Custom processors as plain functions. A plugin module (a file path or an npm package named in the
// config) default-exports either a function over a batch or an object with `process` and optional
// `start`/`shutdown`/`mutates`; the `plugin` processor loads it, `processorFromFunction` wraps it.
import { createRequire } from 'node:module';
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
  if (isPath) url = pathToFileURL(path.resolve(configDir, spec)).href;
  else {
    try {
      url = pathToFileURL(createRequire(path.join(configDir, 'noop.js')).resolve(spec)).href;
    } catch {
      url = spec; // let the ESM resolver try from netmon's own node_modules
    }
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new Error(`cannot load plugin module "${spec}": ${(err as Error).message}`);
  }
  return toPluginDefinition(mod.default, `plugin module "${spec}"`);
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
