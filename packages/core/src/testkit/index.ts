export { type ConformanceOptions, describeConformance, sampleFlows } from './conformance.js';
export * from './meter.js';
export { testSettings } from './settings.js';
export { CollectingSink } from './sinks.js';
