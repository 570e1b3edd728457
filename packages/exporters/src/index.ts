// The factories and config types only: each factory loads its exporter (and the exporter's heavy
// dependencies: gRPC, protobuf, the OpenTelemetry exporter) in `create`, when a config uses it.
export type { DebugExporterConfig } from './debug/config.js';
export { debugExporterFactory } from './debug/factory.js';
export { devzeroExporterFactory } from './devzero/factory.js';
export type { FileExporterConfig } from './file/config.js';
export { fileExporterFactory } from './file/factory.js';
export type { OtlpExporterConfig } from './otlp/config.js';
export { otlpExporterFactory } from './otlp/factory.js';
export type { PrometheusExporterConfig } from './prometheus/config.js';
export { prometheusExporterFactory } from './prometheus/factory.js';
