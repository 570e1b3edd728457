// The Grafana dashboard (charts/netmon/dashboards/netmon.json) against what the agent really serves.
//
// 1. Structure: unique panel ids, a grid position on every panel, the ${datasource} variable on every
//    panel and target, a unit and a description on every panel, only known template variables.
// 2. Names: every PromQL query of every panel (and every template variable's label_values) is parsed by
//    a small PromQL parser below, and each metric it selects, each label it filters on, groups by
//    (by, without, on, ignoring, group_left/right), reads (label_replace, histogram_quantile's le) or
//    shows in a legend must be in a real /metrics render: the built agent (bin/netmon) replaying the
//    bundled AWS sample through k8s_attributes → classify → cost at granularity workload, and the agent's
//    own run() in this process on configs/kubernetes.yaml (the chart's pipeline) with the two kernel
//    receivers (flows, dns) replaced by stand-ins that replay the same sample and emit DNS lookups and
//    serve the receivers' declared self-metrics under the same component ids; everything else is real
//    (k8s_metadata from the sample's cluster snapshot, dns_cache, classify, cost, the prometheus
//    exporter, an otlp exporter sending to a closed port).
// 3. Queries: Debian's promtool accepts each one (as a recording rule), and Debian's Prometheus, scraping
//    the in-process agent, evaluates each one without error and (but for a named few that are empty on a
//    healthy agent) returns data.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defaultRegistry, runAgent } from '@netmon/agent';
import {
  type BatchSink,
  DnsBatch,
  type DnsLookupInit,
  DnsRcode,
  DnsType,
  defineReceiver,
  type Factory,
  getExtension,
  type MetricDeclarations,
  observeMetrics,
  type Receiver,
  type ReceiverFactory,
  Registry,
  silentLogger,
} from '@netmon/core';
import { DNS_CACHE } from '@netmon/extensions';
import { dnsReceiverFactory, fileReceiverFactory, flowsReceiverFactory } from '@netmon/receivers';
import type { Meter } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { AgentProcess, freePort, ROOT, withTmpDir } from './harness/agent.js';
import { PrometheusServer, prometheusTool } from './harness/prometheus-server.js';

const DASHBOARD_FILE = path.join(ROOT, 'charts/netmon/dashboards/netmon.json');
const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');
const SNAPSHOT = path.join(ROOT, 'configs/examples/replay-cluster.json');

// ---------------------------------------------------------------------------------------------------------
// The Grafana JSON model, as far as the checks read it.

interface DataSourceRef {
  type?: string;
  uid?: string;
}

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: DataSourceRef;
  format?: string;
  instant?: boolean;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: DataSourceRef;
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
  transformations?: { id: string; options?: { renameByName?: Record<string, string> } }[];
  panels?: Panel[];
  collapsed?: boolean;
}

interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  definition?: string;
  datasource?: DataSourceRef;
  allValue?: string;
  includeAll?: boolean;
  multi?: boolean;
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  __inputs?: unknown;
}

function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included (a collapsed row keeps its panels inside). */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
}

// ---------------------------------------------------------------------------------------------------------
// Grafana's variables, replaced as Grafana would before the query reaches Prometheus.

/** Values for the built-in and dashboard variables; multi-value ones in the `(a|b)` regex form Grafana sends. */
type Values = Record<string, string>;

const BUILTINS: Values = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

/**
 * Replaces `$name`, `${name}` and `${name:format}`; `$1`-style references (label_replace) stay. A
 * variable that is neither built in nor given throws, naming it.
 */
function interpolate(expr: string, values: Values): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (all, braced: string | undefined, bare: string) => {
    const name = braced ?? bare;
    if (/^\d+$/.test(name)) return all;
    const value = values[name] ?? BUILTINS[name];
    if (value === undefined) throw new Error(`unknown variable ${all}`);
    return value;
  });
}

// ---------------------------------------------------------------------------------------------------------
// A small PromQL parser that tracks, for every subexpression, which labels its series can carry, and
// reports names that the scraped metrics do not have. promtool checks the syntax; this checks the names.

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];
/** Series Prometheus makes for every target. */
const SCRAPE_SERIES = ['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_series_added'];

const AGGREGATIONS = new Set(
  'sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio'.split(
    ' ',
  ),
);
/** Aggregations whose output keeps the input's labels. */
const SELECTING = new Set(['topk', 'bottomk', 'limitk', 'limit_ratio']);
/** Functions whose result has the labels of their (first) vector argument. */
const FUNCTIONS = new Set(
  (
    'abs ceil floor round exp ln log2 log10 sqrt sgn clamp clamp_min clamp_max rate irate increase ' +
    'delta idelta deriv predict_linear changes resets timestamp sort sort_desc sort_by_label ' +
    'sort_by_label_desc avg_over_time min_over_time max_over_time sum_over_time count_over_time ' +
    'last_over_time quantile_over_time stddev_over_time stdvar_over_time present_over_time ' +
    'holt_winters double_exponential_smoothing histogram_count histogram_sum histogram_avg ' +
    'histogram_fraction histogram_stddev histogram_stdvar'
  ).split(' '),
);
const BINARY_PRECEDENCE: Record<string, number> = {
  or: 1,
  and: 2,
  unless: 2,
  '==': 3,
  '!=': 3,
  '<=': 3,
  '<': 3,
  '>=': 3,
  '>': 3,
  '+': 4,
  '-': 4,
  '*': 5,
  '/': 5,
  '%': 5,
  atan2: 5,
  '^': 6,
};

interface Token {
  kind: 'ident' | 'number' | 'duration' | 'string' | 'punct';
  text: string;
  /** Strings: the unquoted value. */
  value?: string;
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const rest = src.slice(i);
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && c !== '`') {
          value += src[j + 1];
          j += 2;
        } else value += src[j++];
      }
      if (j >= src.length) throw new Error(`unterminated string at offset ${i}`);
      tokens.push({ kind: 'string', text: src.slice(i, j + 1), value });
      i = j + 1;
    } else {
      const m =
        /^\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*/.exec(rest) ??
        /^(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(rest) ??
        /^[a-zA-Z_][a-zA-Z0-9_:]*/.exec(rest) ??
        /^(?:==|!=|<=|>=|=~|!~|[-+*/%^<>=(){}[\],:@])/.exec(rest);
      if (!m) throw new Error(`unexpected character ${JSON.stringify(c)} at offset ${i}`);
      const text = m[0];
      const kind = /^\d+(?:ms|[smhdwy])/.test(text)
        ? 'duration'
        : /^[\d.]/.test(text)
          ? 'number'
          : /^[a-zA-Z_]/.test(text)
            ? 'ident'
            : 'punct';
      tokens.push({ kind, text });
      i += text.length;
    }
  }
  return tokens;
}

/** What a subexpression yields: its type and the labels its series can carry (strings: their value). */
interface Shape {
  type: 'vector' | 'scalar' | 'string';
  labels: Set<string>;
  value?: string;
}

/** Metric names of a /metrics text, each with every label name its series carry. */
type Known = Map<string, Set<string>>;

class PromqlChecker {
  private readonly tokens: Token[];
  private pos = 0;
  readonly issues: string[] = [];
  readonly metrics = new Set<string>();

  constructor(
    src: string,
    private readonly known: Known,
  ) {
    this.tokens = tokenize(src);
  }

  /** Parses the whole query; the shape of its result. */
  check(): Shape {
    const shape = this.expr(0);
    if (this.pos < this.tokens.length)
      throw new Error(`unexpected ${this.tokens[this.pos].text} after the query`);
    return shape;
  }

  private peek(offset = 0): Token | undefined {
    return this.tokens[this.pos + offset];
  }

  private take(): Token {
    const t = this.tokens[this.pos++];
    if (!t) throw new Error('unexpected end of query');
    return t;
  }

  private expect(text: string): void {
    const t = this.take();
    if (t.text !== text) throw new Error(`expected ${text}, found ${t.text}`);
  }

  private isIdent(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t?.kind === 'ident' && t.text.toLowerCase() === text;
  }

  private labelList(): string[] {
    this.expect('(');
    const labels: string[] = [];
    while (this.peek()?.text !== ')') {
      const t = this.take();
      if (t.kind !== 'ident') throw new Error(`expected a label name, found ${t.text}`);
      labels.push(t.text);
      if (this.peek()?.text === ',') this.take();
    }
    this.expect(')');
    return labels;
  }

  private binaryOperator(): string | undefined {
    const t = this.peek();
    if (!t) return undefined;
    const op = t.kind === 'ident' ? t.text.toLowerCase() : t.text;
    if (t.kind === 'ident' && !['and', 'or', 'unless', 'atan2'].includes(op)) return undefined;
    return op in BINARY_PRECEDENCE ? op : undefined;
  }

  private expr(minPrecedence: number): Shape {
    let left = this.unary();
    for (;;) {
      const op = this.binaryOperator();
      if (op === undefined || BINARY_PRECEDENCE[op] < minPrecedence) return left;
      this.take();
      if (this.isIdent('bool')) this.take();
      let on: string[] | undefined;
      let ignoring: string[] | undefined;
      if (this.isIdent('on')) {
        this.take();
        on = this.labelList();
      } else if (this.isIdent('ignoring')) {
        this.take();
        ignoring = this.labelList();
      }
      let group: { side: 'left' | 'right'; labels: string[] } | undefined;
      if (this.isIdent('group_left') || this.isIdent('group_right')) {
        const side = this.take().text.toLowerCase() === 'group_left' ? 'left' : 'right';
        group = { side, labels: this.peek()?.text === '(' ? this.labelList() : [] };
      }
      const right = this.expr(op === '^' ? BINARY_PRECEDENCE[op] : BINARY_PRECEDENCE[op] + 1);
      left = this.binary(op, left, right, on, ignoring, group);
    }
  }

  private binary(
    op: string,
    l: Shape,
    r: Shape,
    on: string[] | undefined,
    ignoring: string[] | undefined,
    group: { side: 'left' | 'right'; labels: string[] } | undefined,
  ): Shape {
    if (l.type !== 'vector' && r.type !== 'vector') return { type: 'scalar', labels: new Set() };
    if (l.type !== 'vector') return r;
    if (r.type !== 'vector') return l;
    for (const x of on ?? []) {
      if (!l.labels.has(x) || !r.labels.has(x))
        this.issue(`on(${x}): label ${x} is not on both sides of ${op}`);
    }
    for (const x of ignoring ?? []) {
      if (!l.labels.has(x) && !r.labels.has(x))
        this.issue(`ignoring(${x}): label ${x} is on neither side of ${op}`);
    }
    for (const x of group?.labels ?? []) {
      const one = group?.side === 'left' ? r : l;
      if (!one.labels.has(x)) this.issue(`group_${group?.side}(${x}): label ${x} is not on the other side`);
    }
    if (op === 'or') return { type: 'vector', labels: new Set([...l.labels, ...r.labels]) };
    if (op === 'and' || op === 'unless') return l;
    if (group?.side === 'right') return { type: 'vector', labels: new Set([...r.labels, ...group.labels]) };
    if (group?.side === 'left') return { type: 'vector', labels: new Set([...l.labels, ...group.labels]) };
    if (on) return { type: 'vector', labels: new Set(on) };
    if (ignoring)
      return { type: 'vector', labels: new Set([...l.labels].filter((x) => !ignoring.includes(x))) };
    return l;
  }

  private unary(): Shape {
    const t = this.peek();
    if (t?.kind === 'punct' && (t.text === '-' || t.text === '+')) {
      this.take();
      return this.unary();
    }
    return this.postfix();
  }

  private postfix(): Shape {
    const shape = this.primary();
    for (;;) {
      if (this.peek()?.text === '[') {
        // A range or a subquery: durations, and a colon.
        while (this.take().text !== ']') {}
      } else if (this.isIdent('offset')) {
        this.take();
        if (this.peek()?.text === '-') this.take();
        this.take();
      } else if (this.peek()?.text === '@') {
        this.take();
        const t = this.take();
        if (t.kind === 'ident') {
          this.expect('(');
          this.expect(')');
        }
      } else return shape;
    }
  }

  private primary(): Shape {
    const t = this.take();
    if (t.kind === 'number' || t.kind === 'duration') return { type: 'scalar', labels: new Set() };
    if (t.kind === 'string') return { type: 'string', labels: new Set(), value: t.value };
    if (t.text === '(') {
      const inner = this.expr(0);
      this.expect(')');
      return inner;
    }
    if (t.text === '{') return this.selector(undefined);
    if (t.kind !== 'ident') throw new Error(`unexpected ${t.text}`);
    const name = t.text;
    if (/^(inf|nan)$/i.test(name)) return { type: 'scalar', labels: new Set() };
    if (AGGREGATIONS.has(name.toLowerCase())) return this.aggregation(name.toLowerCase());
    if (this.peek()?.text === '(') return this.call(name);
    if (this.peek()?.text === '{') this.take();
    else return this.selectorOf(name, []);
    return this.selector(name);
  }

  /** After `{`: the matchers, then the selector's shape. */
  private selector(name: string | undefined): Shape {
    const matchers: string[] = [];
    let metric = name;
    while (this.peek()?.text !== '}') {
      const label = this.take();
      if (label.kind !== 'ident') throw new Error(`expected a label name in a selector, found ${label.text}`);
      const op = this.take();
      if (!['=', '!=', '=~', '!~'].includes(op.text)) throw new Error(`expected a matcher, found ${op.text}`);
      const value = this.take();
      if (value.kind !== 'string') throw new Error(`expected a string after ${label.text}${op.text}`);
      if (label.text === '__name__' && op.text === '=') metric = value.value;
      else if (label.text !== '__name__') matchers.push(label.text);
      if (this.peek()?.text === ',') this.take();
    }
    this.expect('}');
    if (metric === undefined) throw new Error('a selector without a metric name');
    return this.selectorOf(metric, matchers);
  }

  private selectorOf(metric: string, matchers: string[]): Shape {
    this.metrics.add(metric);
    const labels = this.known.get(metric);
    if (!labels) {
      this.issue(`metric ${metric} is not in the scraped /metrics`);
      return { type: 'vector', labels: new Set(TARGET_LABELS) };
    }
    for (const m of matchers) {
      if (!labels.has(m) && !TARGET_LABELS.includes(m)) this.issue(`label ${m} is not on ${metric}`);
    }
    return { type: 'vector', labels: new Set([...labels, ...TARGET_LABELS]) };
  }

  private aggregation(op: string): Shape {
    let clause: { kind: 'by' | 'without'; labels: string[] } | undefined;
    const readClause = () => {
      if (this.isIdent('by') || this.isIdent('without')) {
        const kind = this.take().text.toLowerCase() as 'by' | 'without';
        clause = { kind, labels: this.labelList() };
      }
    };
    readClause();
    this.expect('(');
    const parameter =
      op === 'count_values' || op === 'quantile' || SELECTING.has(op) ? this.expr(0) : undefined;
    if (parameter) this.expect(',');
    const input = this.expr(0);
    this.expect(')');
    if (!clause) readClause();
    if (input.type !== 'vector') throw new Error(`${op} of a ${input.type}`);
    for (const x of clause?.labels ?? []) {
      if (!input.labels.has(x)) this.issue(`${op} ${clause?.kind} (${x}): label ${x} is not on its input`);
    }
    if (SELECTING.has(op)) return input;
    let labels: Set<string>;
    if (clause?.kind === 'by') labels = new Set(clause.labels);
    else if (clause?.kind === 'without')
      labels = new Set([...input.labels].filter((x) => !clause?.labels.includes(x)));
    else labels = new Set();
    if (op === 'count_values' && parameter?.value) labels.add(parameter.value);
    return { type: 'vector', labels };
  }

  private call(name: string): Shape {
    this.expect('(');
    const args: Shape[] = [];
    while (this.peek()?.text !== ')') {
      args.push(this.expr(0));
      if (this.peek()?.text === ',') this.take();
    }
    this.expect(')');
    const vector = args.find((a) => a.type === 'vector');
    const text = (i: number) => {
      const a = args[i];
      if (a?.type !== 'string' || a.value === undefined)
        throw new Error(`${name}: argument ${i + 1} must be a string`);
      return a.value;
    };
    switch (name) {
      case 'label_replace': {
        if (!vector) throw new Error('label_replace without a vector');
        const src = text(3);
        if (src !== '' && !vector.labels.has(src))
          this.issue(`label_replace reads label ${src}, which is not there`);
        return { type: 'vector', labels: new Set([...vector.labels, text(1)]) };
      }
      case 'label_join': {
        if (!vector) throw new Error('label_join without a vector');
        for (let i = 3; i < args.length; i++) {
          if (!vector.labels.has(text(i)))
            this.issue(`label_join reads label ${text(i)}, which is not there`);
        }
        return { type: 'vector', labels: new Set([...vector.labels, text(1)]) };
      }
      case 'histogram_quantile': {
        if (!vector) throw new Error('histogram_quantile without a vector');
        if (!vector.labels.has('le')) this.issue('histogram_quantile over series without le (keep le in by)');
        return { type: 'vector', labels: new Set([...vector.labels].filter((x) => x !== 'le')) };
      }
      case 'vector':
      case 'absent':
      case 'absent_over_time':
        return { type: 'vector', labels: new Set() };
      case 'scalar':
      case 'time':
      case 'pi':
        return { type: 'scalar', labels: new Set() };
      default:
        if (!FUNCTIONS.has(name)) throw new Error(`unknown function ${name}`);
        return vector ?? { type: 'scalar', labels: new Set() };
    }
  }

  private issue(text: string): void {
    if (!this.issues.includes(text)) this.issues.push(text);
  }
}

/** The problems of one query: unknown metrics and labels, legend labels its result lacks; parse errors too. */
function checkQuery(expr: string, known: Known, legend?: string): { issues: string[]; shape?: Shape } {
  try {
    const checker = new PromqlChecker(expr, known);
    const shape = checker.check();
    const issues = [...checker.issues];
    for (const [, label] of (legend ?? '').matchAll(/\{\{\s*([a-zA-Z_]\w*)\s*\}\}/g)) {
      if (!shape.labels.has(label))
        issues.push(`legend {{${label}}}: the query's result has no label ${label}`);
    }
    return { issues, shape };
  } catch (err) {
    return { issues: [`does not parse: ${(err as Error).message}`] };
  }
}

/** `label_values(selector, label)`: the selector's names, and the label on its series. */
function checkLabelValues(query: string, known: Known): string[] {
  const m = /^label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)$/s.exec(query.trim());
  if (!m) return [`not a label_values(selector, label) query: ${query}`];
  const { issues, shape } = checkQuery(m[1], known);
  if (shape && !shape.labels.has(m[2])) issues.push(`label ${m[2]} is not on ${m[1]}`);
  return issues;
}

/** Metric names and their label names, from exposition text (0.0.4). */
function knownMetrics(...texts: string[]): Known {
  const known: Known = new Map(SCRAPE_SERIES.map((s) => [s, new Set<string>()]));
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
      if (!name) throw new Error(`not a sample line: ${line}`);
      const labels = known.get(name) ?? new Set<string>();
      known.set(name, labels);
      if (line[name.length] === '{') {
        for (const [, label] of line.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g))
          labels.add(label);
      }
    }
  }
  return known;
}

/** Every query of the dashboard: each panel target's, with where it is, and each variable's. */
interface Query {
  where: string;
  expr: string;
  legend?: string;
  panel?: Panel;
}

function panelQueries(d: Dashboard): Query[] {
  return allPanels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      where: `panel "${p.title}" (id ${p.id}) target ${t.refId}`,
      expr: t.expr,
      legend: t.legendFormat,
      panel: p,
    })),
  );
}

/** The checks of all queries with `values` for the variables, as "where: problem" lines. */
function nameIssues(d: Dashboard, known: Known, values: Values): string[] {
  const issues: string[] = [];
  for (const q of panelQueries(d)) {
    let expr: string;
    try {
      expr = interpolate(q.expr, values);
    } catch (err) {
      issues.push(`${q.where}: ${(err as Error).message}`);
      continue;
    }
    const result = checkQuery(expr, known, q.legend === '__auto' ? undefined : q.legend);
    for (const i of result.issues) issues.push(`${q.where}: ${i}`);
    // Labels a table renames must be labels of one of its queries' results.
    for (const tr of q.panel?.transformations ?? []) {
      for (const field of Object.keys(tr.options?.renameByName ?? {})) {
        if (field.startsWith('Value') || field === 'Time') continue;
        const shapes = (q.panel?.targets ?? []).map(
          (t) => checkQuery(interpolate(t.expr, values), known).shape,
        );
        if (!shapes.some((s) => s?.labels.has(field))) {
          const text = `panel "${q.panel?.title}" (id ${q.panel?.id}): the table renames ${field}, which no query returns`;
          if (!issues.includes(text)) issues.push(text);
        }
      }
    }
  }
  for (const v of d.templating.list.filter((x) => x.type === 'query')) {
    for (const i of checkLabelValues(interpolate(variableQuery(v), values), known)) {
      issues.push(`variable ${v.name}: ${i}`);
    }
  }
  return issues;
}

// ---------------------------------------------------------------------------------------------------------
// 1. Structure, and the checker itself on queries that must fail.

describe('Grafana dashboard: structure', () => {
  const d = loadDashboard();
  const panels = allPanels(d);
  const content = panels.filter((p) => p.type !== 'row');

  it('is a Grafana 10/11 dashboard with a fixed uid that imports anywhere (a datasource variable, no __inputs)', () => {
    expect(d.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(d.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(d.title).toContain('netmon');
    expect(d.__inputs).toBeUndefined();
    const ds = d.templating.list.find((v) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(JSON.stringify(d)).not.toMatch(/\$\{DS_/);
    expect(content.length).toBeGreaterThan(40);
  });

  it('has unique panel ids and a grid position inside the 24 columns on every panel, without overlaps', () => {
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    for (const p of d.panels) {
      const g = p.gridPos;
      expect(g, p.title).toBeDefined();
      if (!g) continue;
      for (const k of ['h', 'w', 'x', 'y'] as const)
        expect(Number.isInteger(g[k]), `${p.title} ${k}`).toBe(true);
      expect(g.w, p.title).toBeGreaterThan(0);
      expect(g.h, p.title).toBeGreaterThan(0);
      expect(g.x + g.w, p.title).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const other = cells.get(`${x},${y}`);
          expect(other, `${p.title} overlaps ${other}`).toBeUndefined();
          cells.set(`${x},${y}`, p.title);
        }
      }
    }
    for (const p of panels) expect(p.gridPos, p.title).toBeDefined();
  });

  it('uses the ${datasource} variable on every panel and every target, and says what every panel shows', () => {
    const problems: string[] = [];
    for (const p of content) {
      if (p.datasource?.uid !== '${datasource}')
        problems.push(`${p.title}: panel datasource ${JSON.stringify(p.datasource)}`);
      if ((p.targets ?? []).length === 0) problems.push(`${p.title}: no target`);
      for (const t of p.targets ?? []) {
        if (t.datasource?.uid !== '${datasource}' || t.datasource?.type !== 'prometheus')
          problems.push(`${p.title} ${t.refId}: target datasource ${JSON.stringify(t.datasource)}`);
        if (!t.expr?.trim()) problems.push(`${p.title} ${t.refId}: empty expr`);
      }
      const refIds = (p.targets ?? []).map((t) => t.refId);
      if (new Set(refIds).size !== refIds.length) problems.push(`${p.title}: duplicate refIds ${refIds}`);
      if (!p.fieldConfig?.defaults?.unit) problems.push(`${p.title}: no unit`);
      if ((p.description ?? '').length < 40) problems.push(`${p.title}: no description worth the name`);
    }
    for (const p of panels.filter((x) => x.type === 'row')) {
      if (!p.description) problems.push(`row ${p.title}: no description`);
    }
    expect(problems).toEqual([]);
    const titles = content.map((p) => p.title);
    expect(new Set(titles).size).toBe(titles.length);
  });

  it('has the rows a FinOps or platform engineer looks for, with money in USD and bytes in bytes', () => {
    expect(panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
      'Cost and bytes by traffic class',
      'Cross-zone traffic',
      'Internet egress',
      'Destinations',
      'DNS',
      'Coverage',
      'Agent health',
    ]);
    for (const p of content) {
      const exprs = (p.targets ?? []).map((t) => t.expr).join('\n');
      const unit = p.fieldConfig?.defaults?.unit;
      if (/cost/i.test(p.title) && !/share/i.test(p.title)) expect(unit, p.title).toBe('currencyUSD');
      // Tables carry bytes and dollars side by side: a column's unit is an override.
      if (/netmon_flow_cost_usd_total/.test(exprs) && unit !== 'percentunit' && p.type !== 'table')
        expect(unit, p.title).toBe('currencyUSD');
      if (/^sum\(increase\(netmon_flow_bytes_total/.test(exprs)) expect(unit, p.title).toBe('decbytes');
    }
  });

  it('defines every variable its queries use, with regex-safe "All" values', () => {
    const defined = new Set(d.templating.list.map((v) => v.name));
    expect([...defined]).toEqual(['datasource', 'job', 'instance', 'namespace', 'workload']);
    const used = new Set<string>();
    for (const q of panelQueries(d)) {
      for (const [, a, b] of q.expr.matchAll(/\$\{(\w+)[^}]*\}|\$(\w+)/g)) used.add(a ?? b);
    }
    for (const name of used) {
      if (/^\d+$/.test(name)) continue;
      expect(defined.has(name) || name in BUILTINS, `variable $${name}`).toBe(true);
    }
    for (const v of d.templating.list.filter((x) => x.type === 'query')) {
      expect(v.datasource?.uid, v.name).toBe('${datasource}');
      expect(variableQuery(v), v.name).toMatch(/^label_values\(/);
      expect(v.includeAll && v.multi, v.name).toBe(true);
      expect(['.*', '.+'], v.name).toContain(v.allValue);
    }
  });
});

describe('dashboard PromQL name checker', () => {
  const known = knownMetrics(
    [
      'netmon_flow_bytes_total{src_namespace="shop",src_workload="web",traffic_class="cross_zone",direction="tx"} 1',
      'netmon_dns_lookup_duration_seconds_bucket{dst_domain="a.example",le="0.5"} 1',
    ].join('\n'),
  );
  const issues = (expr: string, legend?: string) => checkQuery(expr, known, legend).issues;

  it('accepts queries that name only what the metrics have', () => {
    expect(
      issues(
        'topk(10, sum by (src_namespace, src_workload) (rate(netmon_flow_bytes_total{job=~".+",traffic_class="cross_zone"}[5m]))) * 3600',
        '{{src_namespace}}/{{src_workload}}',
      ),
    ).toEqual([]);
    expect(
      issues(
        'sum by (ns) (label_replace(sum by (src_namespace) (increase(netmon_flow_bytes_total[5m])), "ns", "$1", "src_namespace", "(.*)") or vector(0))',
        '{{ns}}',
      ),
    ).toEqual([]);
    expect(
      issues(
        'histogram_quantile(0.99, sum by (le, dst_domain) (rate(netmon_dns_lookup_duration_seconds_bucket[1m])))',
        '{{dst_domain}}',
      ),
    ).toEqual([]);
    expect(issues('up{job="netmon"} == 0')).toEqual([]);
  });

  it('names every metric and label the metrics lack', () => {
    expect(issues('sum(rate(netmon_flow_byte_total[5m]))')).toEqual([
      'metric netmon_flow_byte_total is not in the scraped /metrics',
    ]);
    expect(issues('sum(rate(netmon_flow_bytes_total{src_worklod="web"}[5m]))')).toEqual([
      'label src_worklod is not on netmon_flow_bytes_total',
    ]);
    expect(issues('sum by (dst_workload) (rate(netmon_flow_bytes_total[5m]))')).toEqual([
      'sum by (dst_workload): label dst_workload is not on its input',
    ]);
    expect(issues('sum without (le) (netmon_flow_bytes_total)')).toEqual([
      'sum without (le): label le is not on its input',
    ]);
    expect(issues('label_replace(netmon_flow_bytes_total, "x", "$1", "dst_namespace", "(.*)")')).toEqual([
      'label_replace reads label dst_namespace, which is not there',
    ]);
    expect(
      issues(
        'histogram_quantile(0.9, sum by (dst_domain) (rate(netmon_dns_lookup_duration_seconds_bucket[1m])))',
      ),
    ).toEqual(['histogram_quantile over series without le (keep le in by)']);
    expect(
      issues('netmon_flow_bytes_total / on (dst_domain) netmon_dns_lookup_duration_seconds_bucket'),
    ).toEqual(['on(dst_domain): label dst_domain is not on both sides of /']);
    expect(issues('sum by (src_namespace) (netmon_flow_bytes_total)', '{{src_workload}}')).toEqual([
      "legend {{src_workload}}: the query's result has no label src_workload",
    ]);
    expect(issues('sum(rate(netmon_flow_bytes_total[5m])')[0]).toMatch(/^does not parse: /);
  });

  it('reports a broken panel of the dashboard by its title', () => {
    const d = loadDashboard();
    const broken = structuredClone(d);
    const victim = allPanels(broken).find((p) => p.title === 'Top workloads by cross-zone bytes');
    if (!victim?.targets) throw new Error('the panel is gone');
    victim.targets[0].expr = victim.targets[0].expr.replace('src_workload!=""', 'src_wrkload!=""');
    const full = knownMetrics(
      'netmon_flow_bytes_total{src_namespace="a",src_workload="b",traffic_class="cross_zone",direction="tx"} 1',
    );
    const found = nameIssues(broken, full, {
      job: '.+',
      instance: '.+',
      namespace: '.*',
      workload: '.*',
    }).filter((i) => i.includes('Top workloads by cross-zone bytes'));
    expect(found.some((i) => i.includes('label src_wrkload is not on netmon_flow_bytes_total'))).toBe(true);
    expect(() => interpolate('rate(x[$__rate_interval]) and $nope', {})).toThrow('unknown variable $nope');
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2 and 3. Against a real render: the built agent, and the agent's run() on the chart's pipeline.

/** Attribute values a panel shows by name: what a real node would serve. */
const REALISTIC: Record<string, string> = { mode: 'ebpf', chosen_by: 'auto' };

/** The receivers' declared self-metrics, served with growing counters, so rates are not 0. */
function serveDeclared(meter: Meter, metrics: MetricDeclarations): () => void {
  const t0 = Date.now();
  const attributes = (m: MetricDeclarations[string]) =>
    Object.fromEntries(
      Object.keys(m.attributes ?? {})
        .filter((k) => k !== 'component')
        .map((k) => [k, REALISTIC[k] ?? `sample_${k}`]),
    );
  const observed = observeMetrics(meter, metrics, (record) => {
    const rec = record as unknown as Record<string, (value: number, attrs?: Record<string, string>) => void>;
    for (const [key, m] of Object.entries(metrics)) {
      if (m.kind === 'histogram') continue;
      const value =
        m.kind === 'counter' ? 1 + Math.floor((Date.now() - t0) / 100) : m.unit === 's' ? 0.002 : 1;
      rec[key](value, attributes(m));
    }
  });
  const histograms = observed.histograms as unknown as Record<
    string,
    { record(v: number, a?: object): void }
  >;
  for (const [key, m] of Object.entries(metrics))
    if (m.kind === 'histogram') histograms[key].record(1, attributes(m));
  return () => observed.close();
}

/** The `flows` receiver as configured, reading the bundled sample instead of the kernel. */
function flowsStandIn(): ReceiverFactory {
  const real = flowsReceiverFactory as ReceiverFactory;
  return defineReceiver({
    kind: 'receiver',
    type: real.type,
    stability: real.stability,
    description: 'test stand-in: the bundled sample, looped, with the flows receiver’s self-metrics',
    signals: real.signals,
    config: real.config,
    metrics: real.metrics,
    create: async (settings, _config, next): Promise<Receiver> => {
      const config = fileReceiverFactory.config.parse({
        path: SAMPLE,
        loop: true,
        pace: 'recorded',
        speed: 20,
      });
      const file = await fileReceiverFactory.create(settings, config, next);
      let stop = () => {};
      return {
        start: async () => {
          stop = serveDeclared(settings.meter, real.metrics ?? {});
          await file.start?.();
        },
        shutdown: async () => {
          stop();
          await file.shutdown?.();
        },
      };
    },
  });
}

/** Pods of the sample's cluster snapshot that look things up, and what they ask. */
const CLIENTS = { frontend: '10.0.1.34', checkout: '10.0.3.45', payments: '10.0.3.27', unknown: '10.9.9.9' };

function lookups(time: number): DnsLookupInit[] {
  const a = (name: string, ip: string) => ({ name, type: DnsType.A, ttl: 30, ip });
  return [
    {
      time,
      clientIp: CLIENTS.payments,
      question: 'api.stripe.com',
      latencyMs: 14,
      answers: [a('api.stripe.com', '54.187.174.169')],
    },
    { time, clientIp: CLIENTS.frontend, question: 'www.googleapis.com', latencyMs: 9, answers: [] },
    {
      time,
      clientIp: CLIENTS.frontend,
      question: 'catalog.shop.svc.cluster.local',
      latencyMs: 0.4,
      answers: [],
    },
    {
      time,
      clientIp: CLIENTS.checkout,
      question: 'payments-api.shop.svc.cluster.local',
      rcode: DnsRcode.NXDOMAIN,
      latencyMs: 0.7,
      answers: [],
    },
    {
      time,
      clientIp: CLIENTS.payments,
      question: 'flaky.example',
      rcode: DnsRcode.SERVFAIL,
      latencyMs: 2600,
      answers: [],
    },
    // An answer whose query was not seen: no latency.
    { time, clientIp: CLIENTS.unknown, question: 'example.org', answers: [] },
  ];
}

/** The `dns` receiver as configured, emitting lookups every 200 ms and teaching dns_cache their answers. */
function dnsStandIn(): ReceiverFactory {
  const real = dnsReceiverFactory as ReceiverFactory;
  return defineReceiver({
    kind: 'receiver',
    type: real.type,
    stability: real.stability,
    description: 'test stand-in: DNS lookups of the sample’s pods, with the dns receiver’s self-metrics',
    signals: real.signals,
    optionalExtensions: [DNS_CACHE],
    config: real.config,
    metrics: real.metrics,
    create: (settings, _config, next: BatchSink): Receiver => {
      const cache = getExtension(settings, DNS_CACHE);
      let timer: NodeJS.Timeout | undefined;
      let stop = () => {};
      return {
        start: () => {
          stop = serveDeclared(settings.meter, real.metrics ?? {});
          timer = setInterval(() => {
            const batch = DnsBatch.from(lookups(Date.now()));
            cache?.learn(batch);
            next.consume(batch);
          }, 200);
        },
        shutdown: () => {
          clearInterval(timer);
          stop();
        },
      };
    },
  });
}

/** The shipped registry with the two kernel receivers replaced. */
function standInRegistry(): Registry {
  const replaced: Record<string, () => ReceiverFactory> = { flows: flowsStandIn, dns: dnsStandIn };
  return new Registry(
    defaultRegistry()
      .all()
      .map((f): Factory => (f.kind === 'receiver' && replaced[f.type] ? replaced[f.type]() : f)),
  );
}

async function fetchText(url: string, until: (text: string) => boolean, what: string): Promise<string> {
  const end = Date.now() + 15_000;
  let text = '';
  for (;;) {
    try {
      text = await (await fetch(url)).text();
      if (until(text)) return text;
    } catch {
      // not listening yet
    }
    if (Date.now() > end)
      throw new Error(`${url} did not serve ${what} within 15 s; last:\n${text.slice(0, 3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `fn` with these environment variables set, restoring them after. */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Queries that may return nothing from healthy agents, and why. */
const MAY_BE_EMPTY: Record<string, string> = {
  'Components not OK, by node': 'lists only components whose status is not ok',
};

describe.runIf(prometheusTool('promtool') && prometheusTool('prometheus'))(
  'Grafana dashboard queries against the agent’s /metrics',
  () => {
    it('name only metrics and labels the agent serves, parse in promtool, and return data in Prometheus', async () => {
      const d = loadDashboard();
      await withTmpDir(async (dir) => {
        // The built agent (bin/netmon) on the shipped replay example, at granularity workload.
        const cliPort = await freePort();
        const overlay = path.join(dir, 'replay-overlay.yaml');
        await writeFile(overlay, 'exporters: { prometheus: { granularity: workload } }\n');
        const cli = new AgentProcess(['run', '--config', 'configs/examples/replay.yaml', overlay], {
          env: {
            NETMON_OUTPUT: path.join(dir, 'flows.jsonl'),
            NETMON_PROMETHEUS_ENDPOINT: `127.0.0.1:${cliPort}`,
            NETMON_HEALTH_ENDPOINT: '127.0.0.1:0',
          },
        });

        // The agent's run() on the chart's pipeline, in this process, with the kernel receivers replaced.
        const [port, overflowPort, closedPort] = [await freePort(), await freePort(), await freePort()];
        const chartOverlay = path.join(dir, 'kubernetes-overlay.yaml');
        await writeFile(
          chartOverlay,
          `processors:
  classify:
    exactly_once: false   # the sample holds each connection once, from the node that opened it
    rules: [{ name: shop NLB, cidrs: [10.0.1.200/32, 10.0.2.200/32], class: load_balancer }]
exporters:
  prometheus: { endpoint: 127.0.0.1:${port} }
  # A second endpoint whose series overflow at once: the otel_metric_overflow label is served.
  prometheus/overflow: { endpoint: 127.0.0.1:${overflowPort}, max_series: 2, self_metrics: false }
  # Sends to a port nobody listens on: the send-queue self-metrics and their failures.
  otlp:
    endpoint: 127.0.0.1:${closedPort}
    tls: { insecure: true }
    interval: 200ms
    timeout: 500ms
    retry_on_failure: { enabled: false }
extensions:
  health_check: { endpoint: 127.0.0.1:0 }
  k8s_metadata: { snapshot: ${SNAPSHOT} }
service:
  pipelines:
    flows: { exporters: [prometheus, prometheus/overflow, otlp] }
    dns: { exporters: [prometheus, prometheus/overflow, otlp] }
`,
        );
        let stopAgent: (v?: unknown) => void = () => {};
        const stopped = new Promise((r) => {
          stopAgent = r;
        });
        let prometheus: PrometheusServer | undefined;
        const env = {
          POD_IP: '127.0.0.1',
          NODE_NAME: 'ip-10-0-1-17.eu-west-1.compute.internal',
          NETMON_STATE_DIR: dir,
        };
        await withEnv(env, async () => {
          const exited = runAgent({
            configFiles: [path.join(ROOT, 'configs/kubernetes.yaml'), chartOverlay],
            registry: standInRegistry(),
            logger: () => silentLogger(),
            stop: stopped,
          });
          try {
            const cliText = await fetchText(
              `http://127.0.0.1:${cliPort}/metrics`,
              (t) => t.includes('netmon_flow_cost_usd_total{') && t.includes('dst_domain='),
              'priced flows',
            );
            // A start that fails ends run() at once; its log is silent here, so say so rather than time out.
            const failedStart = exited.then((code) => {
              throw new Error(
                `the in-process agent stopped with ${code} before serving (run it with a logger)`,
              );
            });
            failedStart.catch(() => {});
            const chartText = await Promise.race([
              failedStart,
              fetchText(
                `http://127.0.0.1:${port}/metrics`,
                (t) =>
                  t.includes('netmon_dns_lookup_duration_seconds_bucket{') &&
                  t.includes('netmon_flow_cost_usd_total{') &&
                  t.includes('netmon_exporter_send_failures_total{') &&
                  /^netmon_dns_cache_learned_answers_total\{[^}]*\} [1-9]/m.test(t),
                'flows, DNS lookups, answers dns_cache learned and otlp failures',
              ),
            ]);
            const overflowText = await fetchText(
              `http://127.0.0.1:${overflowPort}/metrics`,
              (t) => t.includes('otel_metric_overflow="true"'),
              'overflow series',
            );
            // The sample's workloads and domains are in the render the checks use, at workload granularity.
            expect(cliText).toMatch(
              /^netmon_flow_bytes_total\{src_namespace="payments",src_workload_kind="Deployment",src_workload="payments-api",[^}]*dst_domain="api\.stripe\.com"/m,
            );
            expect(chartText).toMatch(
              /^netmon_dns_lookups_total\{src_namespace="shop",src_workload_kind="Deployment",src_workload="checkout",dst_domain="payments-api\.shop\.svc\.cluster\.local",dns_response_code="NXDOMAIN"\}/m,
            );
            expect(cliText).not.toMatch(/src_pod=/);
            const known = knownMetrics(cliText, chartText, overflowText);

            // 2. Names, with multi-value selections (the regex form Grafana sends) and with "All".
            const chosen: Values = {
              job: 'netmon',
              instance: `(127\\\\.0\\\\.0\\\\.1:${port}|127\\\\.0\\\\.0\\\\.1:${cliPort})`,
              namespace: '(shop|payments)',
              workload: '(frontend|payments\\\\-api)',
            };
            const all: Values = { job: '.+', instance: '.+', namespace: '.*', workload: '.*' };
            expect(nameIssues(d, known, chosen)).toEqual([]);
            expect(nameIssues(d, known, all)).toEqual([]);

            // 3a. promtool parses every query, as a recording rule.
            const queries = panelQueries(d);
            const groups = queries.flatMap((q, i) =>
              [chosen, all].map((values, v) => ({
                name: `${q.where} ${v === 0 ? 'chosen values' : 'All'}`,
                rules: [{ record: `dashboard:query_${i}:${v}`, expr: interpolate(q.expr, values) }],
              })),
            );
            const rulesFile = path.join(dir, 'dashboard-rules.yml');
            await writeFile(rulesFile, JSON.stringify({ groups }));
            const promtool = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
            expect(`${promtool.stdout}${promtool.stderr}`).toContain(`SUCCESS: ${groups.length} rules found`);
            expect(promtool.status).toBe(0);

            // 3b. Prometheus evaluates every query; all but the named few return data.
            prometheus = await PrometheusServer.start(dir, `127.0.0.1:${port}`);
            const p = prometheus;
            await p.eventually('sum(rate(netmon_dns_lookups_total[1m])) > 0', (r) =>
              expect(r).toHaveLength(1),
            );
            await p.eventually('sum(rate(netmon_flow_cost_usd_total[1m])) > 0', (r) =>
              expect(r).toHaveLength(1),
            );
            const evalValues: Values = { ...all, instance: `127\\\\.0\\\\.0\\\\.1:${port}` };
            const pending = new Map(queries.map((q) => [q.where, q]));
            const deadline = Date.now() + 15_000;
            let failures: string[] = [];
            while (pending.size > 0) {
              failures = [];
              for (const [where, q] of pending) {
                const expr = interpolate(q.expr, evalValues);
                try {
                  const result = await p.query(expr);
                  if (result.length > 0 || (q.panel && MAY_BE_EMPTY[q.panel.title])) pending.delete(where);
                  else failures.push(`${where}: no data for ${expr}`);
                } catch (err) {
                  failures.push(`${where}: ${(err as Error).message}`);
                }
                // With chosen values the query only needs to evaluate.
                try {
                  await p.query(
                    interpolate(q.expr, { ...chosen, instance: `127\\\\.0\\\\.0\\\\.1:${port}` }),
                  );
                } catch (err) {
                  failures.push(`${where} (chosen values): ${(err as Error).message}`);
                }
              }
              if (pending.size === 0 || Date.now() > deadline) break;
              await new Promise((r) => setTimeout(r, 500));
            }
            expect(failures).toEqual([]);
            // What the variables offer: each label_values query has values.
            for (const v of d.templating.list.filter((x) => x.type === 'query')) {
              const [, selector, label] =
                /^label_values\((.*),\s*(\w+)\)$/s.exec(interpolate(variableQuery(v), evalValues)) ?? [];
              const values = await p.query(`count by (${label}) (${selector})`);
              expect(values.map((s) => s.metric[label]).filter(Boolean).length, v.name).toBeGreaterThan(0);
            }
            // What some panels show, against what was fed in.
            const panel = async (title: string, refId = 'A') => {
              const t = allPanels(d)
                .find((x) => x.title === title)
                ?.targets?.find((x) => x.refId === refId);
              if (!t) throw new Error(`no panel "${title}" with target ${refId}`);
              return p.query(interpolate(t.expr, evalValues));
            };
            const only = async (title: string, refId = 'A') => {
              const r = await panel(title, refId);
              expect(r, `${title} ${refId}`).toHaveLength(1);
              return Number(r[0].value[1]);
            };
            const labelled = async (title: string, ...labels: string[]) =>
              (await panel(title)).map((s) => labels.map((l) => s.metric[l]).join('/'));
            // The money is in USD, and free classes are priced at 0.
            const costs = new Map(
              (await panel('Cost by traffic class')).map((s) => [s.metric.traffic_class, Number(s.value[1])]),
            );
            expect(costs.get('cross_zone')).toBeGreaterThan(0);
            expect(costs.get('internet_egress')).toBeGreaterThan(0);
            expect(costs.get('same_node')).toBe(0);
            expect(await only('Network cost')).toBeGreaterThan(0);
            // The sample's talkers, attributed to the workload that opened the connections.
            expect(
              await labelled('Top workloads by cross-zone bytes', 'src_namespace', 'src_workload'),
            ).toEqual(expect.arrayContaining(['shop/frontend', 'shop/catalog', 'payments/payments-api']));
            expect(await labelled('Top workloads by internet egress bytes', 'namespace', 'workload')).toEqual(
              expect.arrayContaining(['payments/payments-api', 'shop/frontend']),
            );
            expect(await labelled('Top destination domains by bytes', 'dst_domain')).toEqual(
              expect.arrayContaining(['api.stripe.com', 'www.googleapis.com', 'sqs.eu-west-1.amazonaws.com']),
            );
            // One lookup in six is NXDOMAIN, one SERVFAIL.
            expect(await only('NXDOMAIN and SERVFAIL rate', 'A')).toBeCloseTo(1 / 6, 6);
            expect(await only('NXDOMAIN and SERVFAIL rate', 'B')).toBeCloseTo(1 / 6, 6);
            // Latencies 0.4, 0.7, 9, 14 and 2600 ms per round: the median in the 5–10 ms bucket, interpolated
            // at its middle; the 99th percentile 95% into the 2.5–5 s bucket.
            expect(await only('Lookup latency', 'A')).toBeCloseTo(0.0075, 6);
            expect(await only('Lookup latency', 'C')).toBeCloseTo(4.875, 6);
            expect(
              await labelled(
                'Failing lookups by workload and name',
                'src_workload',
                'dst_domain',
                'dns_response_code',
              ),
            ).toEqual(
              expect.arrayContaining([
                'checkout/payments-api.shop.svc.cluster.local/NXDOMAIN',
                'payments-api/flaky.example/SERVFAIL',
              ]),
            );
            // The mode the flows receiver says it runs (the stand-in says ebpf, chosen by auto).
            expect(await labelled('Collection mode per node', 'mode', 'chosen_by')).toEqual(['ebpf/auto']);
            // The otlp exporter sending to a closed port is not ok, and says so.
            expect(await labelled('Components not OK, by node', 'component', 'status')).toEqual(
              expect.arrayContaining(['otlp/recoverable_error']),
            );
            expect(await only('Components not OK')).toBeGreaterThanOrEqual(1);
            expect(await only('Agents up')).toBe(1);
          } finally {
            await prometheus?.stop();
            stopAgent();
            expect(await exited).toBe(0);
            cli.signal('SIGTERM');
            await cli.exit();
          }
        });
      });
    }, 60_000);
  },
);
