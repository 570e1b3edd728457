import { defineProcessor } from '@netmon/core';
import { K8S_METADATA, type K8sMetadata } from '../k8s_metadata/metadata.js';
import { k8sAttributesConfig } from './config.js';
import { K8sAttributesProcessor } from './k8s_attributes.js';

export const k8sAttributesProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'k8s_attributes',
  stability: 'alpha',
  description:
    'Labels both ends of each flow with pod, namespace, workload, node, zone, region and service, and which end is local.',
  signals: ['flows'],
  extensions: [K8S_METADATA],
  config: k8sAttributesConfig,
  create: (settings, config) =>
    new K8sAttributesProcessor(settings.extensions.get(K8S_METADATA) as K8sMetadata, config),
});
