// From merged YAML to a validated, typed configuration. Every problem is collected (not just the first),
// each with its path, file, line and column; nothing starts unless the list is empty.
import { parse as parseYamlScalar } from 'yaml';
import { z } from 'zod';
import type { ComponentKind, Factory, Signal } from '../component.js';
import { SIGNALS } from '../component.js';
import type { Registry } from '../registry.js';
import { duration } from './duration.js';
import {
  ConfigError,
  type ConfigSource,
  isPlainObject,
  joinPath,
  type Problem,
  positionOf,
  readConfigFiles,
  type Tree,
} from './source.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const queueSchema = z
  .strictObject({
    size: z.number().int().min(1).default(64).describe('Batches the queue holds before it drops.'),
    overflow: z
      .enum(['drop_oldest', 'drop_newest'])
      .default('drop_oldest')
      .describe(
        'Which batch a full queue drops. drop_oldest suits cumulative sources: the newest counters supersede the old.',
      ),
  })
  .describe('The bounded queue between each receiver and this pipeline.');

const pipelineSchema = z.strictObject({
  receivers: z.array(z.string()).min(1, 'a pipeline needs at least one receiver'),
  processors: z.array(z.string()).default([]),
  exporters: z.array(z.string()).min(1, 'a pipeline needs at least one exporter'),
  queue: queueSchema.prefault({}),
});

export const serviceSchema = z.strictObject({
  extensions: z.array(z.string()).default([]).describe('Extensions to start, by id.'),
  pipelines: z
    .record(z.string(), pipelineSchema)
    .describe('Pipelines by id `signal[/name]`: flows, flows/cost, dns, …'),
  telemetry: z
    .strictObject({
      logs: z
        .strictObject({
          level: z.enum(LOG_LEVELS).default('info').describe('Log level; --log-level overrides it.'),
        })
        .prefault({}),
    })
    .prefault({}),
  shutdown_timeout: duration()
    .prefault('10s')
    .describe('On SIGTERM/SIGINT, how long in-flight data may take to drain to the exporters.'),
});

const topSchema = z.strictObject({
  receivers: z.record(z.string(), z.unknown()).nullish(),
  processors: z.record(z.string(), z.unknown()).nullish(),
  exporters: z.record(z.string(), z.unknown()).nullish(),
  extensions: z.record(z.string(), z.unknown()).nullish(),
  service: serviceSchema,
});

export type QueueConfig = z.output<typeof queueSchema>;

export interface ComponentSpec {
  kind: ComponentKind;
  /** `type` or `type/name`. */
  id: string;
  type: string;
  factory: Factory;
  config: unknown;
  configDir: string;
}

export interface PipelineSpec {
  id: string;
  signal: Signal;
  receivers: string[];
  processors: string[];
  exporters: string[];
  queue: QueueConfig;
}

export interface ResolvedConfig {
  components: Record<ComponentKind, Map<string, ComponentSpec>>;
  extensions: string[];
  pipelines: PipelineSpec[];
  logLevel: LogLevel;
  shutdownTimeoutMs: number;
}

const SECTIONS: Record<ComponentKind, string> = {
  receiver: 'receivers',
  processor: 'processors',
  exporter: 'exporters',
  extension: 'extensions',
};

const ID_PATTERN = /^([a-z][a-z0-9_]{0,62})(?:\/([^\s/]{1,1024}))?$/;

/** Reads, merges, expands and validates config files; throws ConfigError listing every problem. */
export async function loadConfig(
  files: readonly string[],
  registry: Registry,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedConfig> {
  return resolveConfig(await readConfigFiles(files), registry, env);
}

export function resolveConfig(
  source: ConfigSource,
  registry: Registry,
  env: NodeJS.ProcessEnv,
): ResolvedConfig {
  const problems: Problem[] = [];
  // One problem per place: a value whose ${env:…} failed would otherwise also fail its type check.
  const reported = new Set<string>();
  const report = (parts: (string | number)[], message: string) => {
    const at = joinPath(parts);
    if (reported.has(at)) return;
    reported.add(at);
    problems.push({ path: at, message, position: positionOf(source, parts) });
  };

  const tree = expandEnv(source.tree, [], env, report) as Tree;

  const top = topSchema.safeParse(tree);
  if (!top.success) {
    for (const issue of top.error.issues) reportIssue(issue, [], report, topSchema);
    throw new ConfigError(problems);
  }
  const { service } = top.data;

  const components = {} as Record<ComponentKind, Map<string, ComponentSpec>>;
  for (const [kind, section] of Object.entries(SECTIONS) as [ComponentKind, string][]) {
    components[kind] = new Map();
    const defs = (tree[section] ?? {}) as Tree;
    for (const [id, raw] of Object.entries(defs)) {
      const m = ID_PATTERN.exec(id);
      if (!m) {
        report(
          [section, id],
          'a component id is `type` or `type/name` (type: lower_snake_case; name: no spaces or /)',
        );
        continue;
      }
      const factory = registry.get(kind, m[1]);
      if (!factory) {
        const known = registry.types(kind);
        report([section, id], `unknown ${kind} type "${m[1]}"; known types: ${known.join(', ') || 'none'}`);
        continue;
      }
      const parsed = factory.config.safeParse(raw ?? {});
      if (!parsed.success) {
        for (const issue of parsed.error.issues) reportIssue(issue, [section, id], report, factory.config);
        continue;
      }
      components[kind].set(id, {
        kind,
        id,
        type: m[1],
        factory,
        config: parsed.data,
        configDir: source.configDirs.get(`${section}::${id}`) ?? process.cwd(),
      });
    }
  }

  const defined = (kind: ComponentKind, id: string) =>
    components[kind].has(id) || Object.hasOwn((tree[SECTIONS[kind]] ?? {}) as Tree, id);

  const neededExtensions = new Map<string, (string | number)[]>();
  service.extensions.forEach((id, i) => {
    if (!defined('extension', id)) {
      report(
        ['service', 'extensions', i],
        `references extension "${id}" which is not configured under extensions`,
      );
    }
    const spec = components.extension.get(id);
    for (const ext of spec?.factory.extensions ?? []) neededExtensions.set(ext, ['extensions', id]);
  });

  const pipelines: PipelineSpec[] = [];
  const pipelineEntries = Object.entries(service.pipelines);
  if (pipelineEntries.length === 0) report(['service', 'pipelines'], 'at least one pipeline is required');
  for (const [pid, p] of pipelineEntries) {
    const base = ['service', 'pipelines', pid];
    const signal = pid.split('/')[0] as Signal;
    if (!SIGNALS.includes(signal) || !/^[a-z]+(\/[^\s/]+)?$/.test(pid)) {
      report(base, `a pipeline id is \`signal[/name]\` with signal one of: ${SIGNALS.join(', ')}`);
      continue;
    }
    for (const [kind, list] of [
      ['receiver', p.receivers],
      ['processor', p.processors],
      ['exporter', p.exporters],
    ] as const) {
      const seen = new Set<string>();
      list.forEach((id, i) => {
        const at = [...base, SECTIONS[kind], i];
        if (!defined(kind, id)) {
          report(at, `references ${kind} "${id}" which is not configured under ${SECTIONS[kind]}`);
          return;
        }
        if (seen.has(id)) report(at, `${kind} "${id}" is listed twice in this pipeline`);
        seen.add(id);
        const spec = components[kind].get(id);
        if (!spec) return; // its own config was invalid; already reported
        const signals = (spec.factory as { signals: readonly Signal[] }).signals;
        if (!signals.includes(signal)) {
          report(at, `${kind} "${id}" does not support ${signal} (it supports: ${signals.join(', ')})`);
        }
        for (const ext of spec.factory.extensions ?? []) neededExtensions.set(ext, [SECTIONS[kind], id]);
      });
    }
    pipelines.push({ id: pid, signal, ...p });
  }

  const enabledTypes = new Set(service.extensions.map((id) => id.split('/')[0]));
  for (const [type, at] of neededExtensions) {
    if (!enabledTypes.has(type)) {
      report(at, `needs the ${type} extension: add it under extensions and list it in service::extensions`);
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    components,
    extensions: service.extensions,
    pipelines,
    logLevel: service.telemetry.logs.level,
    shutdownTimeoutMs: service.shutdown_timeout,
  };
}

type Report = (parts: (string | number)[], message: string) => void;

function reportIssue(
  issue: z.core.$ZodIssue,
  prefix: (string | number)[],
  report: Report,
  schema: z.ZodType,
): void {
  const parts = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(schema, issue.path);
    for (const key of issue.keys) {
      report(
        [...parts, key],
        `unknown key "${key}"${known.length ? `; expected one of: ${known.join(', ')}` : ''}`,
      );
    }
    return;
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && message.includes('received undefined')) {
    message = `required: ${message.replace('Invalid input: ', '').replace(', received undefined', '')}`;
  }
  report(parts, message.replace(/^Invalid input: /, ''));
}

/** Keys the object schema at `path` accepts, for "did you mean" style messages. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: unknown = schema;
  const unwrap = (x: unknown): unknown => {
    let cur = x as { _zod?: { def?: Record<string, unknown> } };
    for (let guard = 0; guard < 10 && cur?._zod?.def; guard++) {
      const def = cur._zod.def;
      if (def.type === 'object') return cur;
      const inner = (def.innerType ??
        def.in ??
        (def.type === 'record' ? def.valueType : undefined)) as typeof cur;
      if (!inner) return cur;
      cur = inner;
    }
    return cur;
  };
  s = unwrap(s);
  for (const seg of path) {
    const def = (s as { _zod?: { def?: Record<string, unknown> } })?._zod?.def;
    if (!def) return [];
    if (def.type === 'object') s = unwrap((def.shape as Record<string, unknown>)[String(seg)]);
    else if (def.type === 'record') s = unwrap(def.valueType);
    else if (def.type === 'array') s = unwrap(def.element);
    else return [];
  }
  const def = (s as { _zod?: { def?: Record<string, unknown> } })?._zod?.def;
  return def?.type === 'object' ? Object.keys(def.shape as object) : [];
}

const REF = /\$\$|\$\{([^}]*)\}/g;
const ENV_REF = /^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/**
 * Expands `${env:NAME}` and `${env:NAME:-default}` in every string; `$$` is a literal `$`. A value that is
 * exactly one reference is re-read as YAML, so `${env:PORT}` can fill a number field.
 */
function expandEnv(
  value: unknown,
  parts: (string | number)[],
  env: NodeJS.ProcessEnv,
  report: Report,
): unknown {
  if (typeof value === 'string') {
    if (!value.includes('$')) return value;
    let whole = false;
    const out = value.replace(REF, (match, body: string | undefined, offset: number) => {
      if (match === '$$') return '$';
      const m = ENV_REF.exec(body ?? '');
      if (!m) {
        report(parts, `unsupported reference ${match}; use \${env:NAME} or \${env:NAME:-default}`);
        return match;
      }
      whole = offset === 0 && match.length === value.length;
      const v = env[m[1]];
      if (v !== undefined && v !== '') return v;
      if (m[2] !== undefined) return m[2];
      report(
        parts,
        `environment variable ${m[1]} is not set (write \${env:${m[1]}:-default} to give a default)`,
      );
      return '';
    });
    if (whole) {
      try {
        const typed = parseYamlScalar(out) as unknown;
        if (typeof typed !== 'object' || typed === null) return typed ?? out;
      } catch {
        // not valid YAML on its own: keep the string
      }
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, [...parts, i], env, report));
  if (isPlainObject(value)) {
    const out: Tree = {};
    for (const [k, v] of Object.entries(value)) out[k] = expandEnv(v, [...parts, k], env, report);
    return out;
  }
  return value;
}
