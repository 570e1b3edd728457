import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { defineExtension } from '@netmon/core';
import { k8sMetadataConfig } from './config.js';
import { K8sMetadataExtension } from './extension.js';
import { K8S_METADATA } from './metadata.js';

export const k8sMetadataExtensionFactory = defineExtension({
  kind: 'extension',
  type: K8S_METADATA,
  stability: 'alpha',
  description:
    'Watches pods, nodes, services and EndpointSlices (one informer set per agent) and tells k8s_attributes, classify and cost who owns each flow address.',
  config: k8sMetadataConfig,
  async validate(config, { configDir }) {
    if (config.kubeconfig === undefined) return [];
    const file = resolve(configDir, config.kubeconfig);
    try {
      if (!(await stat(file)).isFile()) return [{ key: 'kubeconfig', message: `${file} is not a file` }];
      await access(file, constants.R_OK);
      return [];
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : String(code);
      return [{ key: 'kubeconfig', message: `${file} ${why}` }];
    }
  },
  create: (settings, config) => new K8sMetadataExtension(settings, config),
});
