// From merged YAML to a validated, typed configuration. Every problem is collected (not just the first),
// each with its path, file, line and column, and with the name that was probably meant where one is near;
// nothing starts unless the list is empty. A problem in one component skips only that component's later
// checks: the rest of the file is still checked, so one run lists everything to fix.
import { z } from 'zod';
import type { ComponentKind, ConfigIssue, Factory, Signal, ValidateContext } from '../component.js';
import { SIGNALS } from '../component.js';
import type { Registry } from '../registry.js';
import { type Claim, type ClaimConflict, type ClaimsOf, findConflicts } from './claims.js';
import { duration, formatDuration } from './duration.js';
import {
  ConfigError,
  type ConfigInput,
  type ConfigSource,
  isPlainObject,
  joinPath,
  type Problem,
  positionOf,
  readConfigFiles,
  type Tree,
} from './source.js';
import {
  didYouMean,
  extending,
  KIND_AFFIXES,
  nearest,
  RENAMED_KEYS,
  RENAMED_TYPES,
  type Suggestions,
  squash,
  suggest,
} from './suggest.js';

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
  shutdown_timeout: duration({ min: 100 })
    .prefault('10s')
    .describe(
      'On SIGTERM/SIGINT, how long in-flight data may take to drain to the exporters; a stop that takes longer exits 1. At least 100ms: every component needs a moment to stop, even with nothing to drain.',
    ),
  start_timeout: duration({ min: 1 })
    .prefault('30s')
    .describe(
      'How long each component may take to start. One that takes longer is put in permanent_error, what already started is stopped, and `netmon run` exits 1 naming it. It also bounds each component’s own checks before anything starts (`netmon validate`, and `netmon run` before it starts): a plugin module whose top-level code never finishes loading is reported as a configuration problem when this time is up.',
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

const COMPONENT_SECTIONS = new Set(Object.values(SECTIONS));

const ID_PATTERN = /^([a-z][a-z0-9_]{0,62})(?:\/([^\s/]{1,1024}))?$/;

/**
 * Reads, merges, expands and validates config files; throws ConfigError listing every problem: schema,
 * references and pipelines, and each component's own checks (its `validate` hook), all in one list.
 */
export async function loadConfig(
  files: readonly ConfigInput[],
  registry: Registry,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedConfig> {
  const source = await readConfigFiles(files);
  const checked = checkConfig(source, registry, env);
  const problems = [
    ...(source.problems ?? []),
    ...checked.problems,
    ...(await runValidateHooks(checked, source)),
  ];
  if (problems.length > 0 || !checked.config) throw new ConfigError(problems);
  return checked.config;
}

/**
 * The configuration the files (and in-memory documents) make once merged and expanded, as `netmon run
 * --print-config` shows it: what the agent would run, minus credentials. A value made by a variable named as
 * a credential (CLUSTER_TOKEN) shows its reference, `${env:CLUSTER_TOKEN}`, and a value written in a file
 * under a credential's key (`token`, `password`, `x-api-key`…) or a header shows `<redacted>`. Checked first: a
 * configuration that does not load throws its ConfigError, as `run` would.
 */
export async function printableConfig(
  files: readonly ConfigInput[],
  registry: Registry,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tree> {
  await loadConfig(files, registry, env);
  const source = await readConfigFiles(files);
  const shown: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    shown[name] = SECRET_NAME.test(name) && value && value.length > 0 ? `\${env:${name}}` : value;
  }
  const ignore: Report = () => {};
  const expanded = expandEnv(source.tree, [], shown, ignore, new Map(), new Map());
  return redactSecretKeys(expanded) as Tree;
}

/**
 * Keys whose literal values are credentials, whatever component they belong to (`token`, `password`,
 * `api_key`, `x-api-key`, `authorization`, …; not `key_file`, a path). Every header's value counts as one
 * too: what a backend authenticates by is named by the backend (`x-honeycomb-team`, `dd-api-key`).
 */
const SECRET_KEY = /token|secret|pass(word)?|pwd|api[-_]?key|auth|credential|session|cookie|signature/i;
const NOT_SECRET_KEY = /_(file|path|dir)$/;

function redactSecretKeys(value: unknown, all = false): unknown {
  if (Array.isArray(value)) return value.map((v) => redactSecretKeys(v, all));
  if (!isPlainObject(value)) {
    const literal = typeof value === 'string' && value !== '' && !/^\$\{env:[^}]+\}$/.test(value);
    return all && (literal || typeof value === 'number') ? '<redacted>' : value;
  }
  const out: Tree = {};
  for (const [k, v] of Object.entries(value)) {
    const secret = all || k === 'headers' || (SECRET_KEY.test(k) && !NOT_SECRET_KEY.test(k));
    out[k] = redactSecretKeys(v, secret);
  }
  return out;
}

/** What the schema and reference checks found, and what the I/O checks still need. */
interface Checked {
  problems: Problem[];
  /** Set only when nothing is wrong. */
  config?: ResolvedConfig;
  /** Every component whose own config is valid, whatever is wrong elsewhere. */
  components: Record<ComponentKind, Map<string, ComponentSpec>>;
  /** Components (`section::id`) with a value that could not be expanded: their checks would see ''. */
  spoiled: Set<string>;
  /** service::start_timeout, or its default when the service section is invalid. */
  startTimeoutMs: number;
  /** Where each value made by `${env:…}` came from, by path (see expandEnv and withOrigin). */
  envOrigins: Map<string, EnvOrigin>;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;

/**
 * The checks that need I/O (a plugin module loads, a file is readable), for every component whose own config
 * is valid, even when other parts of the file are not: one run lists everything to fix. They run at once,
 * each within service::start_timeout, so a module that never finishes loading cannot hang `validate`.
 */
async function runValidateHooks(checked: Checked, source: ConfigSource): Promise<Problem[]> {
  const runs: Promise<Problem[]>[] = [];
  for (const [kind, section] of Object.entries(SECTIONS) as [ComponentKind, string][]) {
    for (const spec of checked.components[kind].values()) {
      const hook = spec.factory.validate as
        | ((c: unknown, ctx: ValidateContext) => Promise<ConfigIssue[]> | ConfigIssue[])
        | undefined;
      if (!hook || checked.spoiled.has(joinPath([section, spec.id]))) continue;
      runs.push(
        withDeadline(
          (async () =>
            hook(spec.config, { configDir: spec.configDir, startTimeoutMs: checked.startTimeoutMs }))(),
          checked.startTimeoutMs,
        ).then(
          (issues) =>
            issues === TIMED_OUT
              ? [
                  {
                    path: joinPath([section, spec.id]),
                    message: `its checks did not finish within service::start_timeout (${formatDuration(checked.startTimeoutMs)}), e.g. a plugin module whose top-level code never finishes loading`,
                    position: positionOf(source, [section, spec.id]),
                  },
                ]
              : issues.map((issue) => {
                  const parts = [section, spec.id, ...(issue.key ? issue.key.split('::') : [])];
                  return {
                    path: joinPath(parts),
                    message: withOrigin(issue.message, checked.envOrigins.get(joinPath(parts))),
                    position: positionOf(source, parts),
                  };
                }),
          (err: unknown) => [
            {
              path: joinPath([section, spec.id]),
              message: (err as Error).message ?? String(err),
              position: positionOf(source, [section, spec.id]),
            },
          ],
        ),
      );
    }
  }
  return (await Promise.all(runs)).flat();
}

const TIMED_OUT = Symbol('timed out');

/** The promise's value, or TIMED_OUT after `ms`; the timer never outlives the race (it would hold the process). */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Validates a merged source; throws ConfigError listing every problem (no I/O checks: see loadConfig). */
export function resolveConfig(
  source: ConfigSource,
  registry: Registry,
  env: NodeJS.ProcessEnv,
): ResolvedConfig {
  const checked = checkConfig(source, registry, env);
  const problems = [...(source.problems ?? []), ...checked.problems];
  if (problems.length > 0 || !checked.config) throw new ConfigError(problems);
  return checked.config;
}

function checkConfig(source: ConfigSource, registry: Registry, env: NodeJS.ProcessEnv): Checked {
  const problems: Problem[] = [];
  // One problem per place: a value whose ${env:…} failed would otherwise also fail its type check.
  const reported = new Set<string>();
  // A value the environment made says so: the file shows only `${env:…}`, the message the value.
  const envOrigins = new Map<string, EnvOrigin>();
  const report = (parts: (string | number)[], message: string) => {
    const at = joinPath(parts);
    if (reported.has(at)) return;
    reported.add(at);
    problems.push({
      path: at,
      message: withOrigin(message, envOrigins.get(at)),
      position: positionOf(source, parts),
    });
  };

  // A component with a value that could not be expanded is checked by its schema, but its own checks would
  // test the empty string that stands in for the value (a file path of '' is the working directory).
  const spoiled = new Set<string>();
  const reportEnv: Report = (parts, message) => {
    if (parts.length >= 2 && typeof parts[0] === 'string' && COMPONENT_SECTIONS.has(parts[0])) {
      spoiled.add(joinPath(parts.slice(0, 2)));
    }
    report(parts, message);
  };
  const typedFromEnv = new Map<string, string>();
  const tree = expandEnv(source.tree, [], env, reportEnv, typedFromEnv, envOrigins) as Tree;
  const issueReporter = (prefix: (string | number)[], schema: z.ZodType) => (issue: z.core.$ZodIssue) =>
    reportIssue(issue, prefix, report, schema, tree);

  // The top level and the service section are checked piece by piece, so one bad value there does not
  // hide the problems in the components and pipelines.
  const top = topSchema.safeParse(tree);
  if (!top.success) {
    for (const issue of top.error.issues) {
      if (issue.path[0] === 'service' && issue.path.length > 1) continue; // reported per piece below
      issueReporter([], topSchema)(issue);
    }
  }
  const rawService = isPlainObject(tree.service) ? tree.service : {};
  const { pipelines: _pipelines, ...serviceWithoutPipelines } = rawService;
  const parsedService = serviceSchema.omit({ pipelines: true }).safeParse(serviceWithoutPipelines);
  if (!parsedService.success) {
    parsedService.error.issues.forEach(issueReporter(['service'], serviceSchema));
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
      r.error.issues.forEach(issueReporter(['service', 'pipelines', pid], pipelineSchema));
    }
    parsedPipelines.push([pid, r.success ? r.data : undefined, isPlainObject(raw) ? raw : {}]);
  }

  const components = {} as Record<ComponentKind, Map<string, ComponentSpec>>;
  for (const [kind, section] of Object.entries(SECTIONS) as [ComponentKind, string][]) {
    components[kind] = new Map();
    // Not a mapping: the top-level schema said so; its entries are no component ids.
    const defs = isPlainObject(tree[section]) ? tree[section] : {};
    for (const [id, raw] of Object.entries(defs)) {
      const m = ID_PATTERN.exec(id);
      if (!m) {
        const [type, ...name] = id.split('/');
        const hint = typeHint(registry, kind, type, name.length > 0 ? name.join('/') : undefined);
        report(
          [section, id],
          `a component id is \`type\` or \`type/name\` (type: lower_snake_case; name: no spaces or /)${hint ? `; ${hint}` : ''}`,
        );
        continue;
      }
      const factory = registry.get(kind, m[1]);
      if (!factory) {
        const known = registry.types(kind).join(', ') || 'none';
        const hint = typeHint(registry, kind, m[1], m[2]);
        report(
          [section, id],
          `unknown ${kind} type "${m[1]}"; ${hint ? `${hint} (known ${kind} types: ${known})` : `known types: ${known}`}`,
        );
        continue;
      }
      const parsed = parseWithEnvStrings(factory.config, raw ?? {}, [section, id], typedFromEnv);
      if (!parsed.success) {
        parsed.error.issues.forEach(issueReporter([section, id], factory.config));
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

  const configuredIds = (kind: ComponentKind): string[] => {
    const defs = tree[SECTIONS[kind]];
    return isPlainObject(defs) ? Object.keys(defs) : [];
  };
  const defined = (kind: ComponentKind, id: string) =>
    components[kind].has(id) || configuredIds(kind).includes(id);
  /** What the user may have meant by a reference to an id that is not configured. */
  const referenceHint = (kind: ComponentKind, id: string): string => {
    const ids = configuredIds(kind);
    // `otlp` where only `otlp/backend` is configured.
    const named = ids.filter((x) => x.startsWith(`${id}/`));
    if (named.length > 0) return `; ${didYouMean(named)}`;
    const near = suggest(id, ids);
    if (near) return `; ${near}`;
    // A processor listed among the exporters, an extension in a pipeline: say where it belongs.
    const elsewhere = (Object.keys(SECTIONS) as ComponentKind[])
      .filter((k) => k !== kind && configuredIds(k).includes(id))
      .map(
        (k) =>
          `"${id}" is configured under ${SECTIONS[k]}: list it in ${k === 'extension' ? 'service::extensions' : `a pipeline's ${SECTIONS[k]}`}`,
      );
    return elsewhere.length > 0 ? `; ${elsewhere.join('; ')}` : '';
  };

  const neededExtensions = new Map<string, (string | number)[]>();
  serviceExtensions.forEach((id, i) => {
    if (!defined('extension', id)) {
      report(
        ['service', 'extensions', i],
        `references extension "${id}" which is not configured under extensions${referenceHint('extension', id)}`,
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
      const [head, ...name] = pid.split('/');
      const near = nearest(head, SIGNALS);
      // `flow` where a `flows` pipeline exists: renaming it to flows would make a duplicate.
      const meant = [...near.exact, ...near.close]
        .map((s) => [s, ...name].join('/'))
        .filter((id) => !Object.hasOwn(rawPipelines, id));
      report(
        base,
        `a pipeline id is \`signal[/name]\` with signal one of: ${SIGNALS.join(', ')}${meant.length ? `; ${didYouMean(meant)}` : ''}`,
      );
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
          report(
            at,
            `references ${kind} "${id}" which is not configured under ${SECTIONS[kind]}${referenceHint(kind, id)}`,
          );
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

  // The hooks' deadline: the user's start_timeout even when another service setting is wrong.
  const ownStartTimeout = serviceSchema.shape.start_timeout.safeParse(rawService.start_timeout);
  const startTimeoutMs = parsedService.success
    ? parsedService.data.start_timeout
    : ownStartTimeout.success
      ? ownStartTimeout.data
      : DEFAULT_START_TIMEOUT_MS;
  if (problems.length > 0 || !parsedService.success)
    return { problems, components, spoiled, startTimeoutMs, envOrigins };
  const service = parsedService.data;
  for (const c of claimConflicts(components, pipelines, service.extensions)) {
    report([...c.component.split('::'), ...c.key.split('::')], c.message);
  }
  if (problems.length > 0) return { problems, components, spoiled, startTimeoutMs, envOrigins };
  const config: ResolvedConfig = {
    components,
    extensions: service.extensions,
    pipelines,
    logLevel: service.telemetry.logs.level,
    shutdownTimeoutMs: service.shutdown_timeout,
    startTimeoutMs: service.start_timeout,
    stallTimeoutMs: service.stall_timeout,
  };
  return { problems, config, components, spoiled, startTimeoutMs, envOrigins };
}

/** Collisions between what the components in use (in a pipeline, or a started extension) take from the host. */
function claimConflicts(
  components: Record<ComponentKind, Map<string, ComponentSpec>>,
  pipelines: readonly PipelineSpec[],
  extensions: readonly string[],
): ClaimConflict[] {
  const inUse: ComponentSpec[] = [];
  const add = (kind: ComponentKind, id: string) => {
    const spec = components[kind].get(id);
    if (spec && !inUse.includes(spec)) inUse.push(spec);
  };
  for (const id of extensions) add('extension', id);
  for (const p of pipelines) {
    for (const id of p.receivers) add('receiver', id);
    for (const id of p.processors) add('processor', id);
    for (const id of p.exporters) add('exporter', id);
  }
  const all: ClaimsOf[] = [];
  for (const spec of inUse) {
    const claims = (
      spec.factory.claims as ((c: unknown, ctx: { configDir: string }) => Claim[]) | undefined
    )?.(spec.config, { configDir: spec.configDir });
    if (claims?.length) all.push({ component: `${SECTIONS[spec.kind]}::${spec.id}`, claims });
  }
  return findConflicts(all);
}

/**
 * What the user may have meant by an unknown component type: the same type written another way
 * (`K8s-Attributes`, `prometheusexporter`), a type of another kind (`k8s_attributes` under receivers), or a
 * near typo. `name` is kept, so the suggestion is the id to write. '' when nothing is near.
 */
function typeHint(registry: Registry, kind: ComponentKind, type: string, name?: string): string {
  const id = (t: string) => (name === undefined ? t : `${t}/${name}`);
  const renamedTypes = RENAMED_TYPES[kind] ?? {};
  const renamed = Object.hasOwn(renamedTypes, type) ? renamedTypes[type] : undefined;
  if (renamed && registry.get(kind, renamed)) return didYouMean([id(renamed)]);
  const same = nearest(type, registry.types(kind), { affixes: KIND_AFFIXES });
  if (same.exact.length > 0) return didYouMean(same.exact.map(id));
  const others = (Object.keys(SECTIONS) as ComponentKind[])
    .filter((k) => k !== kind)
    .map((k) => {
      const found = nearest(type, registry.types(k), { affixes: KIND_AFFIXES });
      // nearest never offers the input itself; here the very same name under another kind is the answer.
      if (registry.get(k, type)) found.exact.unshift(type);
      return { kind: k, found };
    });
  const elsewhere = (pick: (s: Suggestions) => string[]) =>
    others
      .flatMap((o) =>
        pick(o.found).map(
          (t) => `${id(t)} is ${article(o.kind)} ${o.kind} type: configure it under ${SECTIONS[o.kind]}`,
        ),
      )
      .join('; ');
  const exactElsewhere = elsewhere((s) => s.exact);
  if (exactElsewhere) return exactElsewhere;
  if (same.close.length > 0) return didYouMean(same.close.map(id));
  return elsewhere((s) => s.close);
}

/** `an exporter`, `an extension`, `a receiver`, `a processor`. */
const article = (word: string): string => (/^[aeiou]/.test(word) ? 'an' : 'a');

/**
 * The message, with where its value came from when `${env:…}` made it: the file shows the reference, the
 * message the value, and `awz` is easier to trace to NETMON_CLOUD_PROVIDER when the message names it.
 */
function withOrigin(message: string, origin: EnvOrigin | undefined): string {
  if (!origin) return message;
  let said = message;
  for (const [value, ref] of origin.secrets) said = said.replaceAll(value, ref);
  return `${said} (from ${origin.text})`;
}

/** Where a value made by `${env:…}` came from, and the environment's values in it, which messages never echo. */
interface EnvOrigin {
  text: string;
  /** [value, `${env:NAME}`]: the values of variables named as credentials, shown as their reference instead. */
  secrets: [string, string][];
}

/**
 * Environment variables whose names say they hold a credential (CLUSTER_TOKEN, DB_PASSWORD, API_KEY, …):
 * their values are never echoed in a message, wherever they were put (a token in an endpoint key), and the
 * message shows the reference instead. Other values are (`"awz" is not a provider; did you mean aws?`,
 * `"dakr.devzero.io": the port is missing`): saying what is wrong with them is the point of the message.
 */
const SECRET_NAME = /TOKEN|SECRET|PASS|PWD|KEY|CRED|AUTH|SESSION|COOKIE|SIGNATURE/i;
/** Shorter values are not replaced: no credential is that short, and replacing "1" everywhere garbles. */
const MIN_SECRET_LENGTH = 4;

type Report = (parts: (string | number)[], message: string) => void;

function reportIssue(
  issue: z.core.$ZodIssue,
  prefix: (string | number)[],
  report: Report,
  schema: z.ZodType,
  tree: Tree,
): void {
  const parts = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(schema, issue.path);
    for (const key of issue.keys) {
      const hint = didYouMean(meantKey(schema, issue.path, key, known));
      const list = known.length ? `expected one of: ${known.join(', ')}` : '';
      report(
        [...parts, key],
        `unknown key "${key}"${hint ? `; ${hint}${list ? ` (${list})` : ''}` : list ? `; ${list}` : ''}`,
      );
    }
    return;
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && message.includes('received undefined')) {
    message = `required: ${message.replace('Invalid input: ', '').replace(', received undefined', '')}`;
  }
  if (issue.code === 'invalid_value') {
    const given = valueAt(tree, parts);
    const values = issue.values.filter((v): v is string => typeof v === 'string');
    if (typeof given === 'string' && values.length === issue.values.length) {
      // zod's own wording (`Invalid option: expected one of "a"|"b"`) neither says what was given nor
      // reads as the list a user can copy from; a schema's own message is kept.
      if (message.startsWith('Invalid option:')) {
        message = `${JSON.stringify(given)} is not one of: ${values.join(', ')}`;
      }
      const hint = suggest(given, values);
      if (hint) message = `${message}; ${hint}`;
    }
  }
  report(parts, message.replace(/^Invalid input: /, ''));
}

function valueAt(tree: Tree, parts: readonly (string | number)[]): unknown {
  let cur: unknown = tree;
  for (const p of parts) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isPlainObject(cur)) cur = cur[String(p)];
    else return undefined;
  }
  return cur;
}

/**
 * What an unknown key in the object at `path` probably means, as paths relative to that object: a key
 * renamed with no trace in its name (RENAMED_KEYS, where the new path exists); a sibling written another way
 * or grown longer (`retry` → `retry_on_failure`); else the same key one or more levels down, where it moved
 * under a new parent (`queue_size` → `sending_queue::queue_size`), or the one nested key that extends it.
 */
function meantKey(schema: z.ZodType, path: readonly PropertyKey[], key: string, known: string[]): string[] {
  // Own properties only: a user's key may be `constructor`.
  const renamed = Object.hasOwn(RENAMED_KEYS, key) ? RENAMED_KEYS[key] : undefined;
  if (renamed) {
    const to = renamed.split('::');
    if (knownKeys(schema, [...path, ...to.slice(0, -1)]).includes(to.at(-1) as string)) return [renamed];
  }
  const near = nearest(key, known);
  if (near.exact.length > 0 || near.close.length > 0) return near.exact.length > 0 ? near.exact : near.close;
  const nested = nestedKeys(schema, path);
  const moved = nested.filter((p) => squash(p.split('::').at(-1) as string) === squash(key));
  if (moved.length > 0) return moved;
  const leaves = new Map<string, string[]>();
  for (const p of nested) {
    const leaf = p.split('::').at(-1) as string;
    leaves.set(leaf, [...(leaves.get(leaf) ?? []), p]);
  }
  const grown = extending(key, leaves.keys()).flatMap((leaf) => leaves.get(leaf) ?? []);
  return grown.length === 1 ? grown : [];
}

/** Every key below the direct keys of the object at `path` (`sending_queue::queue_size`), a few levels deep. */
function nestedKeys(schema: z.ZodType, path: readonly PropertyKey[], depth = 3): string[] {
  const out: string[] = [];
  const walk = (at: PropertyKey[], prefix: string[], left: number) => {
    for (const k of knownKeys(schema, at)) {
      // Only objects: below a record (headers, resource) the next segment is a name the user picks.
      if (defOf(schemaAt(schema, [...at, k]))?.type !== 'object') continue;
      for (const b of knownKeys(schema, [...at, k])) out.push([...prefix, k, b].join('::'));
      if (left > 1) walk([...at, k], [...prefix, k], left - 1);
    }
  };
  walk([...path], [], depth);
  return out;
}

type Def = Record<string, unknown>;
const defOf = (s: unknown): Def | undefined => (s as { _zod?: { def?: Def } } | undefined)?._zod?.def;

/** The schema without the wrappers around its value (default, optional, prefault, the input of a pipe). */
function unwrap(x: unknown): unknown {
  let cur = x;
  for (let guard = 0; guard < 10; guard++) {
    const def = defOf(cur);
    if (!def) return cur;
    const inner = def.innerType ?? def.in;
    if (!inner) return cur;
    cur = inner;
  }
  return cur;
}

/** The schema of the value at `path`: object keys, then record keys and array indexes as written. */
function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): unknown {
  let s = unwrap(schema);
  for (const seg of path) {
    const def = defOf(s);
    if (def?.type === 'object') s = unwrap((def.shape as Record<string, unknown>)[String(seg)]);
    else if (def?.type === 'record') s = unwrap(def.valueType);
    else if (def?.type === 'array') s = unwrap(def.element);
    else return undefined;
  }
  return s;
}

/** Keys the object schema at `path` accepts, for "did you mean" style messages. */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const def = defOf(schemaAt(schema, path));
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
  origins: Map<string, EnvOrigin>,
): unknown {
  if (typeof value === 'string') {
    if (!value.includes('$')) return value;
    let whole = false;
    let failed = false;
    const from: string[] = [];
    const secrets: [string, string][] = [];
    const out = value.replace(REF, (match, body: string | undefined, offset: number) => {
      if (match === '$$') return '$';
      const m = ENV_REF.exec(body ?? '');
      if (!m) {
        failed = true;
        report(parts, `unsupported reference ${match}; use \${env:NAME} or \${env:NAME:-default}`);
        return match;
      }
      whole = offset === 0 && match.length === value.length;
      const v = env[m[1]];
      if (m[2] !== undefined && (v === undefined || v === '')) {
        from.push(`the default of ${match}, as ${m[1]} is ${v === undefined ? 'not set' : 'empty'}`);
        return m[2];
      }
      if (v !== undefined) {
        from.push(`\${env:${m[1]}}`);
        if (SECRET_NAME.test(m[1]) && v.length >= MIN_SECRET_LENGTH) secrets.push([v, `\${env:${m[1]}}`]);
        return v;
      }
      failed = true;
      report(
        parts,
        `environment variable ${m[1]} is not set (write \${env:${m[1]}:-default} to give a default)`,
      );
      return '';
    });
    // Its place already has the problem of the failed reference; a note on a later problem would be noise.
    if (!failed && from.length > 0) origins.set(joinPath(parts), { text: from.join(' and '), secrets });
    if (whole && TYPED.test(out)) {
      const typed = out === 'true' ? true : out === 'false' ? false : Number(out);
      if (typed === Number.POSITIVE_INFINITY || typed === Number.NEGATIVE_INFINITY) return out; // 1e999
      typedFromEnv.set(joinPath(parts), out);
      return typed;
    }
    return out;
  }
  if (Array.isArray(value))
    return value.map((v, i) => expandEnv(v, [...parts, i], env, report, typedFromEnv, origins));
  if (isPlainObject(value)) {
    const out: Tree = {};
    for (const [k, v] of Object.entries(value))
      out[k] = expandEnv(v, [...parts, k], env, report, typedFromEnv, origins);
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
