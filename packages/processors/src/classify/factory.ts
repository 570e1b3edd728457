import { defineProcessor, getExtension, requireExtension } from '@netmon/core';
import { DNS_CACHE, K8S_METADATA } from '@netmon/extensions';
import { classifyConfig } from './config.js';
import { CLASSIFY_METRICS } from './metrics.js';

export const classifyProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'classify',
  stability: 'alpha',
  description:
    'Sets each flow’s destination kind and traffic class (same zone, cross zone, internet, private link, …) and keeps one copy per connection across the cluster.',
  signals: ['flows'],
  extensions: [K8S_METADATA],
  optionalExtensions: [DNS_CACHE],
  config: classifyConfig,
  metrics: CLASSIFY_METRICS,
  create: async (settings, config) =>
    new (await import('./classify.js')).ClassifyProcessor(
      settings,
      config,
      requireExtension(settings, K8S_METADATA),
      getExtension(settings, DNS_CACHE),
    ),
});
