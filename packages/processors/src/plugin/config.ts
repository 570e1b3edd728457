import { z } from 'zod';

export const pluginConfig = z.strictObject({
  module: z
    .string()
    .min(1)
    .describe(
      'The plugin: a file path (relative to this config file) or an npm package name. It default-exports a function (batch, ctx) => batch, or an object with process and optional start, shutdown and mutates.',
    ),
  options: z
    .record(z.string(), z.unknown())
    .default({})
    .describe('Free-form settings handed to the plugin as ctx.options.'),
});

export type PluginConfig = z.output<typeof pluginConfig>;
