import { defineProcessor, loadPluginModule, pluginProcessor } from '@netmon/core';
import { pluginConfig } from './config.js';

export const pluginProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'plugin',
  stability: 'alpha',
  description: 'Runs a custom processor: a plain function over a batch, loaded from a module or npm package.',
  signals: ['flows', 'dns'],
  config: pluginConfig,
  async validate(config, { configDir }) {
    try {
      await loadPluginModule(config.module, configDir);
      return [];
    } catch (err) {
      return [{ key: 'module', message: (err as Error).message }];
    }
  },
  async create(settings, config) {
    const definition = await loadPluginModule(config.module, settings.configDir);
    return pluginProcessor(definition, { id: settings.id, options: config.options, logger: settings.logger });
  },
});
