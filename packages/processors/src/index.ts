export { classifyProcessorFactory } from './classify/factory.js';
export { costProcessorFactory } from './cost/factory.js';
export { deltaProcessorFactory } from './delta/factory.js';
export { filterProcessorFactory } from './filter/factory.js';
export { k8sAttributesProcessorFactory } from './k8s_attributes/factory.js';
export { K8S_METADATA, type K8sMetadata, type Resolution, resolveBatch } from './k8s_metadata/metadata.js';
export { type Entity, MetadataStore } from './k8s_metadata/store.js';
export { pluginProcessorFactory } from './plugin/factory.js';
