import { defineReceiver } from '@netmon/core';
import { fileReceiverConfig } from './config.js';
import { FileReceiver } from './receiver.js';
import { checkReadable } from './validate.js';

export const fileReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'file',
  stability: 'alpha',
  description: 'Replays a JSON Lines file of flow records (the file exporter output) as flow batches.',
  signals: ['flows'],
  config: fileReceiverConfig,
  validate: (config, { configDir }) => checkReadable(config, configDir),
  create: (settings, config, next) => new FileReceiver(settings, config, next),
});
