import { defineProcessor } from '@netmon/core';
import { K8S_METADATA, type K8sMetadata } from '../k8s_metadata/metadata.js';
import { ClassifyProcessor, DNS_CACHE, type DnsCache } from './classify.js';
import { classifyConfig } from './config.js';

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
  create: (settings, config) =>
    new ClassifyProcessor(
      settings,
      config,
      settings.extensions.get(K8S_METADATA) as K8sMetadata,
      settings.extensions.get(DNS_CACHE) as DnsCache | undefined,
    ),
});
