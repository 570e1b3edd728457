import { defineProcessor } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { costProcessorConfig } from './config.js';

export const costProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'cost',
  stability: 'alpha',
  description:
    "Prices each flow in USD (cost.usd) from its traffic class, bytes and the cloud's billing rules: AWS, GCP, Azure list prices, overridable.",
  signals: ['flows'],
  config: costProcessorConfig,
  optionalExtensions: [K8S_METADATA],
  create: async (settings, config) => new (await import('./cost.js')).CostProcessor(settings, config),
});
