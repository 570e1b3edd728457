import { defineProcessor, loadPluginModule, pluginProcessor } from '@netmon/core';
import { pluginConfig } from './config.js';

export const pluginProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'plugin',
  stability: 'alpha',
  description: 'Runs a custom processor: a plain function over a batch, loaded from a module or npm package.',
  signals: ['flows', 'dns'],
  config: pluginConfig,
  // Loading runs the module's top-level code: validate executes the plugin (see README, "Trust").
  // startTimeoutMs (service::start_timeout), when the caller passes it, lets the error name the module;
  // the caller bounds the hook by the same deadline either way.
  async validate(config, { configDir, startTimeoutMs }: { configDir: string; startTimeoutMs?: number }) {
    try {
      await loadPluginModule(config.module, configDir, { timeoutMs: startTimeoutMs });
      return [];
    } catch (err) {
      return [{ key: 'module', message: (err as Error).message }];
    }
  },
  async create(settings, config) {
    // Bounded by service::start_timeout where the service creates it; loaded already by validate.
    const definition = await loadPluginModule(config.module, settings.configDir);
    return pluginProcessor(definition, { id: settings.id, options: config.options, logger: settings.logger });
  },
});
