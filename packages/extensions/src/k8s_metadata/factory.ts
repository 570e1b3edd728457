import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { defineExtension } from '@netmon/core';
import { parse } from 'yaml';
import { type K8sMetadataConfig, k8sMetadataConfig, snapshotPaths } from './config.js';
import { K8S_METADATA } from './contract.js';
import { K8S_METADATA_METRICS } from './metrics.js';
import { readSnapshotFile } from './snapshot.js';

export const k8sMetadataExtensionFactory = defineExtension({
  kind: 'extension',
  type: K8S_METADATA,
  stability: 'alpha',
  description:
    'Watches pods, nodes, services and EndpointSlices (one informer set per agent), or reads them from a kubectl snapshot, and tells k8s_attributes, classify and cost who owns each flow address.',
  config: k8sMetadataConfig,
  metrics: K8S_METADATA_METRICS,
  async validate(config, { configDir }) {
    if (config.snapshot !== undefined) return checkSnapshot(config, configDir);
    if (config.kubeconfig === undefined) return [];
    const file = resolve(configDir, config.kubeconfig);
    try {
      if (!(await stat(file)).isFile()) return [{ key: 'kubeconfig', message: `${file} is not a file` }];
      await access(file, constants.R_OK);
      const problem = kubeconfigProblem(await readFile(file, 'utf8'));
      return problem === undefined ? [] : [{ key: 'kubeconfig', message: `${file}: ${problem}` }];
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : String(code);
      return [{ key: 'kubeconfig', message: `${file} ${why}` }];
    }
  },
  // The implementation loads the Kubernetes client: only when a config enables the extension.
  create: async (settings, config) =>
    new (await import('./extension.js')).K8sMetadataExtension(settings, config),
});

/**
 * Reads every snapshot file as the start will (a broken one is a configuration error with its path and,
 * for JSON, line and column), so `netmon validate` catches it; skipped items are the start's to report.
 */
async function checkSnapshot(config: K8sMetadataConfig, configDir: string, env = process.env) {
  const paths = snapshotPaths(config) ?? [];
  const issues: { key: string; message: string }[] = [];
  for (const [i, p] of paths.entries()) {
    try {
      await readSnapshotFile(resolve(configDir, p));
    } catch (err) {
      issues.push({
        key: typeof config.snapshot === 'string' ? 'snapshot' : `snapshot::${i}`,
        message: (err as Error).message,
      });
    }
  }
  if (config.scope === 'node' && !config.node_name && !env.NODE_NAME) {
    issues.push({
      key: 'scope',
      message:
        'scope: node with a snapshot needs node_name (or NODE_NAME): it names the node whose pods are kept; the host name is not guessed',
    });
  }
  return issues;
}

/**
 * What the Kubernetes client will refuse in a kubeconfig when the extension starts (it is not loaded to
 * validate): not YAML, or no current context naming a cluster with a server.
 */
export function kubeconfigProblem(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return `not a kubeconfig: ${(err as Error).message.split('\n')[0]}`;
  }
  type Named<T> = { name?: string } & T;
  const kc = (doc ?? {}) as {
    'current-context'?: string;
    contexts?: Named<{ context?: { cluster?: string } }>[];
    clusters?: Named<{ cluster?: { server?: string } }>[];
  };
  const current = kc['current-context'];
  if (!current) return 'no current-context';
  const context = kc.contexts?.find((c) => c?.name === current)?.context;
  if (!context?.cluster) return `current-context ${current} names no cluster`;
  const cluster = kc.clusters?.find((c) => c?.name === context.cluster)?.cluster;
  if (!cluster?.server) return `cluster ${context.cluster} of current-context ${current} has no server`;
  return undefined;
}
