// The distribution: every component this build of netmon ships. The only place that lists them all.
import { Registry } from '@netmon/core';
import { debugExporterFactory, fileExporterFactory } from '@netmon/exporters';
import { pluginProcessorFactory } from '@netmon/processors';
import { fileReceiverFactory } from '@netmon/receivers';
import { healthCheckFactory } from './health_check/factory.js';

export function defaultRegistry(): Registry {
  return new Registry([
    fileReceiverFactory,
    pluginProcessorFactory,
    fileExporterFactory,
    debugExporterFactory,
    healthCheckFactory,
  ]);
}
