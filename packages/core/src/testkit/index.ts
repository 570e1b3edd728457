export { describeConformance, sampleFlows, type ConformanceOptions } from './conformance.js';
export { CollectingSink } from './sinks.js';
export { testSettings } from './settings.js';
