import { resolve } from 'node:path';
import { type Claim, defineReceiver } from '@netmon/core';
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
  // So that configuration refuses an exporter writing the file replayed (every record read back again)
  // and two components keeping their state in one checkpoint_file.
  claims: (config, { configDir }) => {
    const claims: Claim[] = [{ kind: 'read', key: 'path', path: resolve(configDir, config.path) }];
    if (config.checkpoint_file !== undefined) {
      claims.push({
        kind: 'write',
        key: 'checkpoint_file',
        path: resolve(configDir, config.checkpoint_file),
      });
    }
    return claims;
  },
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).FileReceiver(settings, config, next),
});
