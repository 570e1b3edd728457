// The chart renderer (test/harness/helm-render) against what Helm documents for `helm template`, on a
// small chart of its own (testdata/mini): values merged and nulls removing keys, the built-in objects,
// Helm's functions, sprig without env, named templates, NOTES.txt apart, install order, and errors that
// name the template and line.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { rendererBinary } from '../harness/helm-render/render.mjs';

const run = promisify(execFile);
const MINI = path.join(import.meta.dirname, 'testdata/mini');
let dir: string;
let binary: string;

beforeAll(async () => {
  binary = await rendererBinary();
  dir = await mkdtemp(path.join(tmpdir(), 'helm-render-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function helmRender(
  args: string[],
  chart = MINI,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(binary, [...args, chart]);
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

async function valuesFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('helm-render', () => {
  it('merges -f files over values.yaml in order: maps merge, lists and scalars replace, null removes', async () => {
    const one = await valuesFile('one.yaml', 'a: {c: z, d: 2}\nlist: [3]\n');
    const two = await valuesFile('two.yaml', 'a: {d: 3}\ndrop: null\n');
    const { stdout, code } = await helmRender(['-values', '-f', one, '-f', two]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      a: { b: 1, c: 'z', d: 3 },
      list: [3],
      greeting: 'hello {{ .Release.Name }}',
    });
  });

  it('renders the built-in objects and Helm’s functions as Helm does', async () => {
    const { stdout, code, stderr } = await helmRender(['-name', 'rel', '-namespace', 'space']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const cm = parseAllDocuments(stdout)
      .map((d) => d.toJS())
      .find((o) => o?.kind === 'ConfigMap');
    expect(cm.metadata).toEqual({ name: 'mini-rel', namespace: 'space' });
    expect(cm.data).toEqual({
      chart: 'mini 1.2.3 4.5',
      release: 'Helm rel true false',
      template: 'mini/templates/configmap.yaml',
      // Numbers from YAML values are float64 in Helm (YAML → JSON), printed without a fraction.
      values: '{"a":{"b":1,"c":"x"},"drop":"keep","greeting":"hello {{ .Release.Name }}","list":[1,2]}',
      yaml: 'b: 1\nc: x\n',
      fromYaml: '[1,2]',
      badYaml: 'error converting YAML to JSON: yaml: line 1: did not find expected node content',
      tpl: 'hello rel',
      // missingkey=zero, and "<no value>" removed from the output.
      missing: '[][]',
      file: 'from a file',
      glob: 'files/one.txt;files/two.txt;',
      asConfig: 'one.txt: |\n  from a file\ntwo.txt: |\n  two\n',
      lookup: '{}',
      has: 'true false',
      kube: 'v1.33.0 1 33',
    });
  });

  it('writes each object with its source, in Helm’s install order, and no empty template', async () => {
    const { stdout } = await helmRender([]);
    expect(stdout.match(/^# Source: .*$/gm)).toEqual([
      '# Source: mini/templates/namespace.yaml',
      '# Source: mini/templates/configmap.yaml',
    ]);
    expect(
      stdout.startsWith('---\n# Source: mini/templates/namespace.yaml\napiVersion: v1\nkind: Namespace\n'),
    ).toBe(true);
  });

  it('renders NOTES.txt apart, on request', async () => {
    const { stdout } = await helmRender(['-notes', '-name', 'rel']);
    expect(stdout).toBe('Installed mini-rel.\n');
    expect((await helmRender([])).stdout).not.toContain('Installed');
  });

  it('answers Capabilities.APIVersions.Has for the versions given', async () => {
    const { stdout } = await helmRender(['-api-versions', 'monitoring.coreos.com/v1']);
    expect(stdout).toContain('has: "true true"');
  });

  it('fails as Helm does on required, naming the template, line and column', async () => {
    const f = await valuesFile('fail.yaml', 'fail: true\n');
    const { code, stderr, stdout } = await helmRender(['-f', f]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      'Error: execution error at (mini/templates/configmap.yaml:26:3): fail is set, so value must be too\n',
    );
  });

  it('has no env or expandenv (Helm removes them: a chart must not read the machine it is rendered on)', async () => {
    const chart = path.join(dir, 'env-chart');
    await cp(MINI, chart, { recursive: true });
    await writeFile(path.join(chart, 'templates/env.yaml'), 'home: {{ env "HOME" }}\n');
    const { code, stderr } = await helmRender([], chart);
    expect(code).toBe(1);
    expect(stderr).toMatch(/template: mini\/templates\/env\.yaml:1: function "env" not defined/);
  });

  it('refuses a Kubernetes version outside Chart.yaml’s kubeVersion', async () => {
    const { code, stderr } = await helmRender(['-kube-version', 'v1.19.4']);
    expect(code).toBe(1);
    expect(stderr).toBe(
      'Error: chart requires kubeVersion: >=1.20.0-0 which is incompatible with Kubernetes v1.19.4\n',
    );
  });

  it('reports YAML a template renders wrong, naming the template', async () => {
    const chart = path.join(dir, 'bad-yaml');
    await cp(MINI, chart, { recursive: true });
    await writeFile(path.join(chart, 'templates/bad.yaml'), 'kind: ConfigMap\n  data: {{ 1 }}\n');
    const { code, stderr } = await helmRender([], chart);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^Error: YAML parse error on mini\/templates\/bad\.yaml: /);
  });
});
