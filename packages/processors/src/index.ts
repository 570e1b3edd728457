export { DESTINATION_KINDS, TRAFFIC_CLASS, TRAFFIC_CLASSES, type TrafficClass } from './classify/classes.js';
export { classifyProcessorFactory } from './classify/factory.js';
export { costProcessorFactory } from './cost/factory.js';
export { deltaProcessorFactory } from './delta/factory.js';
export { filterProcessorFactory } from './filter/factory.js';
export { k8sAttributesProcessorFactory } from './k8s_attributes/factory.js';
export { pluginProcessorFactory } from './plugin/factory.js';
