// The pipeline zxporter-netmon's command line and environment stand for: configs/devzero.yaml (the
// DevZero exporter, with DAKR_URL, CLUSTER_TOKEN, CLUSTER_ID, FLUSH_INTERVAL and NODE_NAME from the
// environment), with the flags written over it as one more config document, so `--print-config`, `validate`
// and every error message treat them like a file.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConfigText, configToYaml } from '@netmon/core';

// Inside the bundle this file is one of its assets (the bundler copies it), in a checkout the file itself.
const DEVZERO_CONFIG = new URL('../../../../configs/devzero.yaml', import.meta.url);

/** What the user gave, already checked: `mode` is netfilter, ebpf, cilium or auto. */
export interface ZxporterOptions {
  mode?: string;
  readInterval?: string;
  cleanupInterval?: string;
  metricsBindAddress?: string;
  standalone?: boolean;
  metricsKubeconfig?: string;
}

/** How problems name each document: as files are named, so they read alike. */
export const BASE_NAME = 'configs/devzero.yaml';
export const FLAGS_NAME = '<command line>';

/** The base pipeline, then the flags' document when any flag was given. */
export async function zxporterDocuments(opts: ZxporterOptions): Promise<ConfigText[]> {
  const base: ConfigText = {
    name: BASE_NAME,
    text: `# ${BASE_NAME} (built in): zxporter-netmon's pipeline\n${await readFile(DEVZERO_CONFIG, 'utf8')}`,
    dir: path.dirname(fileURLToPath(DEVZERO_CONFIG)),
  };
  const text = flagsDocument(opts);
  return text ? [base, { name: FLAGS_NAME, text, dir: process.cwd() }] : [base];
}

/**
 * The flags as a config document (YAML) under a comment naming them; '' when none was given.
 * `-cleanup-interval` sets nothing: zxporter-netmon uses it to forget connections it has not seen for a
 * while; netmon forgets one when the kernel reports it gone (conntrack's DESTROY, the end of a dump).
 */
export function flagsDocument(opts: ZxporterOptions): string {
  const given: string[] = [];
  const doc: Tree = {};
  if (opts.mode !== undefined) {
    given.push(`-collector-mode=${opts.mode}`);
    set(doc, ['receivers', 'flows', 'mode'], opts.mode);
  }
  if (opts.readInterval !== undefined) {
    given.push(`-read-interval=${opts.readInterval}`);
    for (const mode of ['netfilter', 'ebpf', 'cilium'])
      set(doc, ['receivers', 'flows', mode, 'read_interval'], opts.readInterval);
  }
  if (opts.cleanupInterval !== undefined) given.push(`-cleanup-interval=${opts.cleanupInterval}`);
  if (opts.metricsBindAddress !== undefined) {
    given.push(`-metrics-bind-address=${opts.metricsBindAddress}`);
    set(doc, ['extensions', 'health_check', 'endpoint'], opts.metricsBindAddress);
  }
  if (opts.metricsKubeconfig !== undefined) {
    given.push(`-metrics-kubeconfig=${opts.metricsKubeconfig}`);
    // Absolute: a relative path would resolve against configs/devzero.yaml, which defines k8s_metadata.
    set(doc, ['extensions', 'k8s_metadata', 'kubeconfig'], path.resolve(opts.metricsKubeconfig));
  }
  if (opts.standalone !== undefined) {
    given.push(`-standalone=${opts.standalone}`);
    // No API: k8s_metadata watches nothing, and flows keep their addresses.
    if (opts.standalone) set(doc, ['extensions', 'k8s_metadata', 'standalone'], true);
  }
  if (given.length === 0) return '';
  const notes = [`# zxporter-netmon's flags: ${given.join(' ')}`];
  if (opts.cleanupInterval !== undefined) {
    notes.push(
      '# -cleanup-interval sets nothing: netmon forgets a connection when the kernel reports it gone.',
    );
  }
  const body = Object.keys(doc).length > 0 ? configToYaml(doc) : '{}\n';
  return `${notes.join('\n')}\n${body}`;
}

type Tree = Record<string, unknown>;

function set(tree: Tree, keys: string[], value: unknown): void {
  let at = tree;
  for (const key of keys.slice(0, -1)) {
    at[key] ??= {};
    at = at[key] as Tree;
  }
  at[keys[keys.length - 1]] = value;
}
