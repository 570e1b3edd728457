// Renders charts/netmon as `helm install`/`helm template` would, with the Go renderer beside this file
// (main.go: Go's text/template, sprig and Helm's own functions): values merged, checked against the chart's
// values.schema.json with ajv (Helm checks them before rendering too), then rendered. Used by the chart's
// tests and by test/chart/render-deploy.mjs, which writes deploy/. Plain JavaScript so that the deploy
// script runs with node alone; render.d.mts types it for the tests.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../../..');
export const CHART_DIR = path.join(ROOT, 'charts/netmon');
const CACHE_DIR = path.join(ROOT, 'node_modules/.cache/netmon-helm-render');

/**
 * The Kubernetes version a render is for (.Capabilities.KubeVersion) unless told: a current one, as
 * `helm install` against a current cluster sees it.
 */
export const DEFAULT_KUBE_VERSION = 'v1.33.0';

/** A render that Helm would refuse: values against the schema, or the templates' own failure. */
export class RenderError extends Error {
  name = 'RenderError';
}

let building;

/**
 * The renderer binary, built once per main.go content into node_modules/.cache (a changed main.go gets a
 * new binary; concurrent builders each write their own file and rename it into place).
 */
export function rendererBinary() {
  building ??= (async () => {
    const source = await readFile(path.join(HERE, 'main.go'));
    const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
    const binary = path.join(CACHE_DIR, `helm-render-${hash}`);
    if (existsSync(binary)) return binary;
    await mkdir(CACHE_DIR, { recursive: true });
    const partial = `${binary}.${process.pid}.tmp`;
    try {
      await run('go', ['build', '-o', partial, '.'], {
        cwd: HERE,
        env: {
          ...process.env,
          // Debian's packaged Go libraries (sprig, ghodss/yaml) in GOPATH mode: no module download.
          GO111MODULE: 'off',
          GOPATH: '/usr/share/gocode',
          GOCACHE: path.join(CACHE_DIR, 'go-build'),
          GOFLAGS: '',
        },
      });
    } catch (err) {
      building = undefined;
      const e = /** @type {NodeJS.ErrnoException & {stderr?: string}} */ (err);
      if (e.code === 'ENOENT') {
        throw new Error(
          'go is not installed: the chart is rendered with Go and sprig (scripts/bootstrap.sh installs golang-go, golang-github-masterminds-sprig-dev and golang-github-ghodss-yaml-dev)',
        );
      }
      throw new Error(`building ${path.join(HERE, 'main.go')} failed:\n${e.stderr ?? e.message}`);
    }
    await rename(partial, binary);
    return binary;
  })();
  return building;
}

async function withValueFiles(values, fn) {
  const dir = await mkdtemp(path.join(tmpdir(), 'netmon-chart-'));
  try {
    const args = [];
    for (const [i, v] of values.entries()) {
      let file = v;
      if (typeof v !== 'string') {
        // JSON is YAML: the renderer reads it as Helm reads a -f file.
        file = path.join(dir, `values-${i}.yaml`);
        await writeFile(file, JSON.stringify(v));
      }
      args.push('-f', file);
    }
    return await fn(args);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function invoke(args) {
  const binary = await rendererBinary();
  try {
    const { stdout } = await run(binary, args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = /** @type {{stderr?: string, message: string}} */ (err);
    throw new RenderError((e.stderr ?? e.message).replace(/^Error: /, '').trim());
  }
}

let validator;

async function schemaValidator() {
  if (!validator) {
    const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8'));
    validator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  }
  return validator;
}

/** The problems values.schema.json finds in these (merged) values, one line each; [] when they pass. */
export async function schemaProblems(values) {
  const validate = await schemaValidator();
  if (validate(values)) return [];
  return (validate.errors ?? []).map((e) => {
    const where = e.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : '(root)';
    const detail =
      e.keyword === 'enum'
        ? ` (${e.params.allowedValues.map((v) => JSON.stringify(v)).join(', ')})`
        : e.keyword === 'additionalProperties'
          ? `: ${e.params.additionalProperty}`
          : '';
    return `${where}: ${e.message}${detail}`;
  });
}

/**
 * Renders the chart. `values`: -f files (paths) or objects, merged in order over values.yaml. Throws
 * RenderError with Helm's wording when the merged values fail the schema, or the templates fail.
 */
export async function renderChart(options = {}) {
  const {
    values = [],
    name = 'netmon',
    namespace = 'netmon',
    apiVersions = [],
    notes = false,
    kubeVersion = DEFAULT_KUBE_VERSION,
  } = options;
  return withValueFiles(values, async (fileArgs) => {
    const merged = JSON.parse(await invoke([...fileArgs, '-values', CHART_DIR]));
    const problems = await schemaProblems(merged);
    if (problems.length > 0) {
      throw new RenderError(
        `values don't meet the specifications of the schema(s) in the following chart(s):\nnetmon:\n${problems
          .map((p) => `- ${p}`)
          .join('\n')}`,
      );
    }
    const args = [...fileArgs, '-name', name, '-namespace', namespace, '-kube-version', kubeVersion];
    for (const v of apiVersions) args.push('-api-versions', v);
    const manifests = await invoke([...args, CHART_DIR]);
    const objects = [];
    // The renderer writes each object as "---\n# Source: <template>\n<document>".
    for (const chunk of manifests.split(/^---\n/m).slice(1)) {
      const source = /^# Source: (\S+)/.exec(chunk)?.[1] ?? '';
      const docs = parseAllDocuments(chunk);
      for (const doc of docs) {
        if (doc.errors.length > 0) {
          throw new RenderError(`${source}: rendered YAML does not parse: ${doc.errors[0].message}`);
        }
        const obj = doc.toJS();
        if (obj !== null && obj !== undefined) objects.push({ source, object: obj });
      }
    }
    const renderedNotes = notes ? await invoke([...args, '-notes', CHART_DIR]) : undefined;
    return { manifests, objects, values: merged, notes: renderedNotes, kubeVersion };
  });
}

/**
 * The oldest Kubernetes the chart installs on: the lower bound of Chart.yaml's kubeVersion (">=1.25.0-0"
 * → "v1.25.0").
 */
export async function oldestKubeVersion() {
  const chart = await readFile(path.join(CHART_DIR, 'Chart.yaml'), 'utf8');
  const m = /^kubeVersion:\s*["']?>=\s*v?(\d+\.\d+(?:\.\d+)?)/m.exec(chart);
  if (!m) throw new Error(`${path.join(CHART_DIR, 'Chart.yaml')}: no kubeVersion lower bound (">=X.Y.Z")`);
  return `v${m[1]}`;
}

/**
 * deploy/: what `kubectl apply -f deploy/netmon.yaml` installs (the chart's defaults, release netmon in
 * namespace netmon, that Namespace first) and the dashboard, by path relative to the repository. Rendered
 * for the oldest Kubernetes the chart supports, so that no field a newer API server alone knows is in it:
 * kubectl's strict field validation (its default) refuses an unknown field, where a plain file cannot ask
 * the cluster's version as `helm install` does.
 */
export async function deployFiles() {
  const { manifests } = await renderChart({
    name: 'netmon',
    namespace: 'netmon',
    kubeVersion: await oldestKubeVersion(),
  });
  const header = [
    '# netmon as plain Kubernetes manifests: kubectl apply -f deploy/netmon.yaml',
    '# Rendered from charts/netmon with its default values (release netmon, namespace netmon) by',
    '# `node test/chart/render-deploy.mjs` (make deploy): do not edit; change the chart, or render it with',
    '# your own values (deploy/README.md).',
    '---',
    '# The agent needs host access (host network, host paths, capabilities beyond the baseline Pod',
    "# Security Standard), so its namespace's Pod Security level is privileged.",
    'apiVersion: v1',
    'kind: Namespace',
    'metadata:',
    '  name: netmon',
    '  labels:',
    '    pod-security.kubernetes.io/enforce: privileged',
    '',
  ].join('\n');
  const dashboard = await readFile(path.join(CHART_DIR, 'dashboards/netmon.json'), 'utf8');
  return {
    'deploy/netmon.yaml': header + manifests,
    'deploy/grafana-dashboard.json': dashboard,
  };
}
