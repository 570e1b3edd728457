export { pluginProcessorFactory } from './plugin/factory.js';
