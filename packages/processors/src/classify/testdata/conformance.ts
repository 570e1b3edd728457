import { K8S_METADATA } from '@netmon/extensions';
import type { ConformanceOptions } from '@netmon/core/testkit';
import { awsStore, staticMetadata } from './cluster.js';

export const conformance: ConformanceOptions = {
  extensions: () => new Map([[K8S_METADATA, staticMetadata(awsStore())]]),
};
