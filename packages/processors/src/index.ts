export { classifyProcessorFactory } from './classify/factory.js';
export { deltaProcessorFactory } from './delta/factory.js';
export { filterProcessorFactory } from './filter/factory.js';
export { k8sAttributesProcessorFactory } from './k8s_attributes/factory.js';
export { pluginProcessorFactory } from './plugin/factory.js';
