// From merged YAML to a validated, typed configuration. Every problem is collected (not just the first),
// each with its path, file, line and column; nothing starts unless the list is empty.
import { z } from 'zod';
import type { ComponentKind, ConfigIssue, Factory, Signal } from '../component.js';
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
  start_timeout: duration({ min: 1 })
    .prefault('30s')
    .describe(
      'How long each component may take to start. One that takes longer is put in permanent_error, what already started is stopped, and `netmon run` exits 1 naming it.',
    ),
  stall_timeout: duration({ min: 1 })
    .prefault('30s')
    .describe(
      'How long one batch may stay in one processor or exporter before the framework reports that component in recoverable_error (the pipeline behind it is stalled); health_check’s /healthz fails once that lasts longer than its recovery_duration. The status clears when the batch completes.',
    ),
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
  startTimeoutMs: number;
  stallTimeoutMs: number;
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
  const source = await readConfigFiles(files);
  const config = resolveConfig(source, registry, env);
  await runValidateHooks(config, source);
  return config;
}

/** The checks that need I/O (a plugin module loads, …), run once the schemas and references are right. */
async function runValidateHooks(config: ResolvedConfig, source: ConfigSource): Promise<void> {
  const problems: Problem[] = [];
  for (const [kind, section] of Object.entries(SECTIONS) as [ComponentKind, string][]) {
    for (const spec of config.components[kind].values()) {
      const hook = spec.factory.validate as
        | ((c: unknown, ctx: { configDir: string }) => Promise<ConfigIssue[]> | ConfigIssue[])
        | undefined;
      if (!hook) continue;
      let issues: ConfigIssue[];
      try {
        issues = await hook(spec.config, { configDir: spec.configDir });
      } catch (err) {
        issues = [{ message: (err as Error).message }];
      }
      for (const issue of issues) {
        const parts = [section, spec.id, ...(issue.key ? issue.key.split('::') : [])];
        problems.push({ path: joinPath(parts), message: issue.message, position: positionOf(source, parts) });
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
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

  const typedFromEnv = new Map<string, string>();
  const tree = expandEnv(source.tree, [], env, report, typedFromEnv) as Tree;

  // The top level and the service section are checked piece by piece, so one bad value there does not
  // hide the problems in the components and pipelines.
  const top = topSchema.safeParse(tree);
  if (!top.success) {
    for (const issue of top.error.issues) {
      if (issue.path[0] === 'service' && issue.path.length > 1) continue; // reported per piece below
      reportIssue(issue, [], report, topSchema);
    }
  }
  const rawService = isPlainObject(tree.service) ? tree.service : {};
  const { pipelines: _pipelines, ...serviceWithoutPipelines } = rawService;
  const parsedService = serviceSchema.omit({ pipelines: true }).safeParse(serviceWithoutPipelines);
  if (!parsedService.success) {
    for (const issue of parsedService.error.issues) reportIssue(issue, ['service'], report, serviceSchema);
  }
  const serviceExtensions = parsedService.success
    ? parsedService.data.extensions
    : Array.isArray(rawService.extensions)
      ? rawService.extensions.filter((x): x is string => typeof x === 'string')
      : [];
  const rawPipelines = isPlainObject(rawService.pipelines) ? rawService.pipelines : {};
  if (rawService.pipelines !== undefined && !isPlainObject(rawService.pipelines)) {
    report(['service', 'pipelines'], 'expected a mapping of pipeline ids to pipelines');
  }
  // A pipeline whose own settings are wrong still has its references checked, from the raw lists.
  const parsedPipelines: [string, z.output<typeof pipelineSchema> | undefined, Tree][] = [];
  for (const [pid, raw] of Object.entries(rawPipelines)) {
    const r = pipelineSchema.safeParse(raw);
    if (!r.success) {
      for (const issue of r.error.issues)
        reportIssue(issue, ['service', 'pipelines', pid], report, pipelineSchema);
    }
    parsedPipelines.push([pid, r.success ? r.data : undefined, isPlainObject(raw) ? raw : {}]);
  }

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
      const parsed = parseWithEnvStrings(factory.config, raw ?? {}, [section, id], typedFromEnv);
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
  serviceExtensions.forEach((id, i) => {
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
  if (isPlainObject(tree.service) && Object.keys(rawPipelines).length === 0) {
    report(['service', 'pipelines'], 'at least one pipeline is required');
  }
  const strings = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  for (const [pid, p, raw] of parsedPipelines) {
    const base = ['service', 'pipelines', pid];
    const signal = pid.split('/')[0] as Signal;
    if (!SIGNALS.includes(signal) || !/^[a-z]+(\/[^\s/]+)?$/.test(pid)) {
      report(base, `a pipeline id is \`signal[/name]\` with signal one of: ${SIGNALS.join(', ')}`);
      continue;
    }
    for (const [kind, list] of [
      ['receiver', p?.receivers ?? strings(raw.receivers)],
      ['processor', p?.processors ?? strings(raw.processors)],
      ['exporter', p?.exporters ?? strings(raw.exporters)],
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
    if (p) pipelines.push({ id: pid, signal, ...p });
  }

  const enabledTypes = new Set(serviceExtensions.map((id) => id.split('/')[0]));
  for (const [type, at] of neededExtensions) {
    if (!enabledTypes.has(type)) {
      report(at, `needs the ${type} extension: add it under extensions and list it in service::extensions`);
    }
  }

  if (problems.length > 0 || !parsedService.success) throw new ConfigError(problems);
  const service = parsedService.data;
  return {
    components,
    extensions: service.extensions,
    pipelines,
    logLevel: service.telemetry.logs.level,
    shutdownTimeoutMs: service.shutdown_timeout,
    startTimeoutMs: service.start_timeout,
    stallTimeoutMs: service.stall_timeout,
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
 * What a whole-value `${env:…}` is typed as: a decimal number as YAML 1.2 reads one (`8080`, `007`, `+1`,
 * `-2.5`, `.5`, `1e3`) or `true`/`false`. Nothing else: reading the value as YAML would let a variable add
 * structure (`[a]`, `{a: 1}`) or unset a field (`null`, `~`), which no one setting `TOKEN=~` means.
 */
const TYPED = /^([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|true|false)$/;

/**
 * Expands `${env:NAME}` and `${env:NAME:-default}` in every string; `$$` is a literal `$`. A value that is
 * exactly one reference and matches TYPED becomes a number or boolean, so `${env:PORT}` can fill a number
 * field; `typedFromEnv` remembers the text, for fields that want a string after all.
 */
function expandEnv(
  value: unknown,
  parts: (string | number)[],
  env: NodeJS.ProcessEnv,
  report: Report,
  typedFromEnv: Map<string, string>,
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
      if (m[2] !== undefined && (v === undefined || v === '')) return m[2];
      if (v !== undefined) return v;
      report(
        parts,
        `environment variable ${m[1]} is not set (write \${env:${m[1]}:-default} to give a default)`,
      );
      return '';
    });
    if (whole && TYPED.test(out)) {
      const typed = out === 'true' ? true : out === 'false' ? false : Number(out);
      if (typed === Number.POSITIVE_INFINITY || typed === Number.NEGATIVE_INFINITY) return out; // 1e999
      typedFromEnv.set(joinPath(parts), out);
      return typed;
    }
    return out;
  }
  if (Array.isArray(value))
    return value.map((v, i) => expandEnv(v, [...parts, i], env, report, typedFromEnv));
  if (isPlainObject(value)) {
    const out: Tree = {};
    for (const [k, v] of Object.entries(value))
      out[k] = expandEnv(v, [...parts, k], env, report, typedFromEnv);
    return out;
  }
  return value;
}

/**
 * Parses a component config; where a field wants a string but got a number or boolean that came from a
 * whole-value `${env:…}`, the variable's text is put back and the config parsed again (an all-digit
 * token or cluster id stays a string).
 */
function parseWithEnvStrings<T>(
  schema: z.ZodType<T>,
  raw: unknown,
  prefix: (string | number)[],
  typedFromEnv: Map<string, string>,
): ReturnType<z.ZodType<T>['safeParse']> {
  let value = raw;
  for (let attempt = 0; attempt < 2; attempt++) {
    const parsed = schema.safeParse(value);
    if (parsed.success || typedFromEnv.size === 0) return parsed;
    let patched = false;
    for (const issue of parsed.error.issues) {
      if (issue.code !== 'invalid_type' || issue.expected !== 'string') continue;
      const text = typedFromEnv.get(joinPath([...prefix, ...(issue.path as (string | number)[])]));
      if (text === undefined) continue;
      value = setIn(value, issue.path as (string | number)[], text);
      patched = true;
    }
    if (!patched) return parsed;
  }
  return schema.safeParse(value);
}

function setIn(value: unknown, path: (string | number)[], leaf: unknown): unknown {
  if (path.length === 0) return leaf;
  const [head, ...rest] = path;
  if (Array.isArray(value)) {
    const copy = [...value];
    copy[head as number] = setIn(copy[head as number], rest, leaf);
    return copy;
  }
  const obj = isPlainObject(value) ? value : {};
  return { ...obj, [head]: setIn(obj[head as string], rest, leaf) };
}
