export { type ConformanceOptions, describeConformance, sampleFlows, sampleLookups } from './conformance.js';
export { type LogEntry, recordingLogger } from './logger.js';
export * from './meter.js';
export * from './service.js';
export { testSettings } from './settings.js';
export { CollectingSink } from './sinks.js';
export { type RawConnection, rawConnection, until } from './sockets.js';
export { TEST_TLS_DIR } from './tls.js';
