export { deltaProcessorFactory } from './delta/factory.js';
export { pluginProcessorFactory } from './plugin/factory.js';
