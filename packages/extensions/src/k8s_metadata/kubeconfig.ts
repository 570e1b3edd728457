// Where the Kubernetes API is: an explicit kubeconfig, the in-cluster service account, KUBECONFIG, or
// ~/.kube/config — or nowhere, and then the reason, for the standalone log line. Unlike the client's
// loadFromDefault() this never falls back to http://localhost:8080, and the service account comes first
// (an agent in a pod that also has a kubeconfig mounted means the pod's identity).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export type ApiLocation = { kc: KubeConfig; source: string } | { kc: undefined; reason: string };

export interface LocateOptions {
  /** The `kubeconfig` config key, already resolved against the config directory. */
  kubeconfig?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** Prefix of the service-account files (tests). */
  serviceAccountRoot?: string;
}

export function locateApi(opts: LocateOptions = {}): ApiLocation {
  const env = opts.env ?? process.env;
  if (opts.kubeconfig !== undefined) {
    if (!existsSync(opts.kubeconfig)) throw new Error(`kubeconfig ${opts.kubeconfig}: no such file`);
    return { kc: load([opts.kubeconfig]), source: `kubeconfig ${opts.kubeconfig}` };
  }
  const prefix = opts.serviceAccountRoot ?? '';
  if (env.KUBERNETES_SERVICE_HOST && existsSync(prefix + SERVICE_ACCOUNT_TOKEN)) {
    const kc = new KubeConfig();
    kc.loadFromCluster(prefix);
    return { kc, source: 'in-cluster service account' };
  }
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(path.delimiter).filter((f) => f !== '' && existsSync(f));
    if (files.length > 0) return { kc: load(files), source: `KUBECONFIG ${files.join(path.delimiter)}` };
  }
  const home = opts.home ?? os.homedir();
  const file = path.join(home, '.kube', 'config');
  if (existsSync(file)) return { kc: load([file]), source: file };
  const inCluster = env.KUBERNETES_SERVICE_HOST
    ? `KUBERNETES_SERVICE_HOST is set but ${prefix + SERVICE_ACCOUNT_TOKEN} does not exist (automountServiceAccountToken: false?)`
    : 'not in a pod (KUBERNETES_SERVICE_HOST is unset)';
  const kubeconfigEnv = env.KUBECONFIG
    ? `KUBECONFIG=${env.KUBECONFIG} names no existing file`
    : 'KUBECONFIG is unset';
  return {
    kc: undefined,
    reason: `no Kubernetes API to watch: ${inCluster}, ${kubeconfigEnv}, and ${file} does not exist. Set the k8s_metadata extension's kubeconfig key or KUBECONFIG, run the agent in a pod with a service account, or set standalone: true to silence this`,
  };
}

function load(files: string[]): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(files[0]);
  // As kubectl merges KUBECONFIG: the first file to name a current context or an entry wins.
  for (const file of files.slice(1)) {
    const more = new KubeConfig();
    more.loadFromFile(file);
    if (!kc.currentContext) kc.currentContext = more.currentContext;
    for (const c of more.clusters) if (!kc.clusters.some((x) => x.name === c.name)) kc.addCluster(c);
    for (const u of more.users) if (!kc.users.some((x) => x.name === u.name)) kc.addUser(u);
    for (const c of more.contexts) if (!kc.contexts.some((x) => x.name === c.name)) kc.addContext(c);
  }
  if (!kc.getCurrentCluster()) {
    throw new Error(`kubeconfig ${files.join(path.delimiter)}: no current context with a cluster`);
  }
  return kc;
}

/** The node name and where it came from: the config, NODE_NAME, or the host name (a guess). */
export function nodeNameOf(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { name: string; guessed: boolean } {
  if (configured) return { name: configured, guessed: false };
  if (env.NODE_NAME) return { name: env.NODE_NAME, guessed: false };
  return { name: os.hostname(), guessed: true };
}
