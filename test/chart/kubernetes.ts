// Checks rendered objects against the Kubernetes API's own schemas (kubernetes-models: the OpenAPI of
// Kubernetes compiled to validators), as the API server would on `kubectl apply`: types, enums, required
// fields, and — as kubectl's default strict field validation does — fields the API does not know, which
// the models alone let through. The Prometheus Operator's ServiceMonitor and PodMonitor are CRDs the
// models do not cover: checked against the parts of their CRD schema the chart uses (below).
import { Ajv } from 'ajv';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

type Validated = { validate(): void };
type ModelClass = new (data: never) => Validated;
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
};

interface ModelError {
  instancePath: string;
  message?: string;
}

function modelErrors(Model: ModelClass, obj: unknown): ModelError[] {
  try {
    new Model(obj as never).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: ModelError[] }).errors;
    if (!errors) throw err;
    return errors;
  }
}

const pointer = (parts: string[]) =>
  parts.map((p) => `/${p.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

/**
 * Fields the schema does not know. A field the schema knows has a type, so a value of no JSON type at
 * all (a Symbol) put in its place fails validation at exactly its path; in an unknown field nothing looks
 * at it. (Map entries — labels, annotations, ConfigMap data — are typed by the map, so they count as known.)
 */
function unknownFields(Model: ModelClass, obj: Json): string[] {
  const root = structuredClone(obj);
  const found: string[] = [];
  const walk = (node: Json, parts: string[]): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => {
        walk(item, [...parts, String(i)]);
      });
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      const value = node[key];
      const path = pointer([...parts, key]);
      (node as Record<string, unknown>)[key] = Symbol('probe');
      const known = modelErrors(Model, root).some((e) => e.instancePath === path);
      node[key] = value;
      if (!known) found.push(`${path}: not a field of ${Model.name}`);
      else walk(value, [...parts, key]);
    }
  };
  walk(root, []);
  return found;
}

// The Prometheus Operator's CRDs (monitoring.coreos.com/v1), for the fields this chart writes; anything
// else is refused here so that a misspelt field cannot pass. Source: the CRDs in
// https://github.com/prometheus-operator/prometheus-operator/tree/main/example/prometheus-operator-crd
// (monitoring.coreos.com_servicemonitors.yaml, monitoring.coreos.com_podmonitors.yaml).
const DURATION =
  '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$';
const relabel = {
  type: 'object',
  additionalProperties: false,
  properties: {
    action: {
      enum: [
        'replace',
        'Replace',
        'keep',
        'Keep',
        'drop',
        'Drop',
        'hashmod',
        'HashMod',
        'labelmap',
        'LabelMap',
        'labeldrop',
        'LabelDrop',
        'labelkeep',
        'LabelKeep',
        'lowercase',
        'Lowercase',
        'uppercase',
        'Uppercase',
        'keepequal',
        'KeepEqual',
        'dropequal',
        'DropEqual',
      ],
    },
    modulus: { type: 'integer' },
    regex: { type: 'string' },
    replacement: { type: 'string' },
    separator: { type: 'string' },
    sourceLabels: { type: 'array', items: { type: 'string', pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' } },
    targetLabel: { type: 'string' },
  },
};
const endpoint = {
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: {
    port: { type: 'string' },
    path: { type: 'string' },
    honorLabels: { type: 'boolean' },
    interval: { type: 'string', pattern: DURATION },
    scrapeTimeout: { type: 'string', pattern: DURATION },
    relabelings: { type: 'array', items: relabel },
    metricRelabelings: { type: 'array', items: relabel },
  },
};
const labelSelector = {
  type: 'object',
  additionalProperties: false,
  properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } },
};
const monitor = (endpointsKey: string) => ({
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'monitoring.coreos.com/v1' },
    kind: { type: 'string' },
    metadata: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'namespace'],
      properties: {
        name: { type: 'string' },
        namespace: { type: 'string' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    spec: {
      type: 'object',
      additionalProperties: false,
      required: ['selector', endpointsKey],
      properties: {
        selector: labelSelector,
        namespaceSelector: {
          type: 'object',
          additionalProperties: false,
          properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: { type: 'string' } } },
        },
        [endpointsKey]: { type: 'array', minItems: 1, items: endpoint },
      },
    },
  },
});
const ajv = new Ajv({ allErrors: true, strict: false });
const CRDS: Record<string, ReturnType<Ajv['compile']>> = {
  'monitoring.coreos.com/v1/ServiceMonitor': ajv.compile(monitor('endpoints')),
  'monitoring.coreos.com/v1/PodMonitor': ajv.compile(monitor('podMetricsEndpoints')),
};

/** What the API server would refuse in this object: [] when nothing. */
export function kubernetesProblems(obj: Json & { apiVersion?: string; kind?: string }): string[] {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const crd = CRDS[key];
  if (crd) {
    return crd(obj) ? [] : (crd.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  }
  const Model = MODELS[key];
  if (!Model) return [`${key}: no schema to check it against (add its kubernetes-models class)`];
  const errors = modelErrors(Model, obj);
  if (errors.length > 0) return errors.map((e) => `${e.instancePath} ${e.message}`);
  return unknownFields(Model, obj);
}
