// The distribution: every component this build of netmon ships. The only place that lists them all.
import { Registry } from '@netmon/core';
import {
  debugExporterFactory,
  devzeroExporterFactory,
  fileExporterFactory,
  otlpExporterFactory,
  prometheusExporterFactory,
} from '@netmon/exporters';
import { dnsCacheFactory, healthCheckFactory, k8sMetadataExtensionFactory } from '@netmon/extensions';
import {
  classifyProcessorFactory,
  costProcessorFactory,
  deltaProcessorFactory,
  filterProcessorFactory,
  k8sAttributesProcessorFactory,
  pluginProcessorFactory,
} from '@netmon/processors';
import {
  ciliumReceiverFactory,
  conntrackReceiverFactory,
  dnsReceiverFactory,
  ebpfReceiverFactory,
  fileReceiverFactory,
  flowsReceiverFactory,
} from '@netmon/receivers';

export function defaultRegistry(): Registry {
  return new Registry([
    ciliumReceiverFactory,
    conntrackReceiverFactory,
    dnsReceiverFactory,
    ebpfReceiverFactory,
    fileReceiverFactory,
    flowsReceiverFactory,
    deltaProcessorFactory,
    k8sAttributesProcessorFactory,
    classifyProcessorFactory,
    costProcessorFactory,
    filterProcessorFactory,
    pluginProcessorFactory,
    fileExporterFactory,
    debugExporterFactory,
    prometheusExporterFactory,
    otlpExporterFactory,
    devzeroExporterFactory,
    healthCheckFactory,
    k8sMetadataExtensionFactory,
    dnsCacheFactory,
  ]);
}
