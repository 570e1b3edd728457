import { z } from 'zod';

export const pluginConfig = z.strictObject({
  module: z
    .string()
    .min(1)
    .describe(
      'The plugin: a file path (absolute, or relative to this config file: ./x.mjs, ../x.mjs) or the name of a package installed with netmon (in the node_modules of its installation; a node_modules near the config file is not searched). URLs (data:, http:, file:, …) are refused. It default-exports a function (batch, ctx) => batch, or an object with process and optional start, shutdown and mutates. Loading runs the module’s code as the agent’s user, in netmon validate too: name only modules you trust, in a place only trusted users can write.',
    ),
  options: z
    .record(z.string(), z.unknown())
    .default({})
    .describe('Free-form settings handed to the plugin as ctx.options.'),
});

export type PluginConfig = z.output<typeof pluginConfig>;
