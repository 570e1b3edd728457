import { defineProcessor, requireExtension } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { k8sAttributesConfig } from './config.js';

export const k8sAttributesProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'k8s_attributes',
  stability: 'alpha',
  description:
    'Labels both ends of each flow with pod, namespace, workload, node, zone, region and service, and which end is local.',
  signals: ['flows'],
  extensions: [K8S_METADATA],
  config: k8sAttributesConfig,
  create: async (settings, config) =>
    new (await import('./k8s_attributes.js')).K8sAttributesProcessor(
      requireExtension(settings, K8S_METADATA),
      config,
    ),
});
