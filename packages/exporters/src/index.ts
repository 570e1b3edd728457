export type { DebugExporterConfig } from './debug/config.js';
export { DebugExporter, humanBytes, protocolName, type WriteFn } from './debug/exporter.js';
export { debugExporterFactory } from './debug/factory.js';
export { devzeroExporterFactory } from './devzero/factory.js';
export type { FileExporterConfig } from './file/config.js';
export { FileExporter } from './file/exporter.js';
export { fileExporterFactory } from './file/factory.js';
