import { defineReceiver } from '@netmon/core';
import { fileReceiverConfig } from './config.js';
import { FILE_RECEIVER_METRICS } from './metrics.js';
import { checkReadable } from './validate.js';

export const fileReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'file',
  stability: 'alpha',
  description: 'Replays a JSON Lines file of flow records (the file exporter output) as flow batches.',
  signals: ['flows'],
  config: fileReceiverConfig,
  metrics: FILE_RECEIVER_METRICS,
  validate: (config, { configDir }) => checkReadable(config, configDir),
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).FileReceiver(settings, config, next),
});
