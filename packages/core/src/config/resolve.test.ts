import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineExporter, defineExtension, defineProcessor, defineReceiver } from '../component.js';
import { Registry } from '../registry.js';
import { duration, formatDuration, parseDuration } from './duration.js';
import { loadConfig, printableConfig } from './resolve.js';
import { ConfigError, displayPath } from './source.js';

const dir = path.join(import.meta.dirname, 'testdata');
const file = (name: string) => path.join(dir, name);
const rel = (name: string) => path.relative(process.cwd(), file(name));

/** The paths the probe receiver's validate hook was called with, in call order. */
const probed: string[] = [];

const testRegistry = () =>
  new Registry([
    defineReceiver({
      kind: 'receiver',
      type: 'probe',
      stability: 'development',
      description: 'a receiver whose validate hook checks its path',
      signals: ['flows'],
      config: z.strictObject({ path: z.string().default('ok') }),
      validate: async (config) => {
        probed.push(config.path);
        if (config.path === 'hang') return new Promise<never>(() => {});
        if (config.path === 'throw') throw new Error('the probe broke');
        return config.path === 'ok' ? [] : [{ key: 'path', message: `cannot read ${config.path}` }];
      },
      create: () => ({}),
    }),
    defineReceiver({
      kind: 'receiver',
      type: 'gen',
      stability: 'development',
      description: 'test generator',
      signals: ['flows'],
      config: z.strictObject({ interval: duration().prefault('10s'), count: z.number().int().default(1) }),
      create: () => ({}),
    }),
    defineProcessor({
      kind: 'processor',
      type: 'tag',
      stability: 'development',
      description: 'test tagger',
      signals: ['flows'],
      config: z.strictObject({ value: z.string().default('x') }),
      create: () => ({ process: (b) => b }),
    }),
    defineExporter({
      kind: 'exporter',
      type: 'sink',
      stability: 'development',
      description: 'test sink',
      signals: ['flows', 'dns'],
      config: z.strictObject({ label: z.string().default('first'), port: z.number().int().default(1) }),
      create: () => ({ export: () => {} }),
    }),
    defineExtension({
      kind: 'extension',
      type: 'needs_nothing',
      stability: 'development',
      description: 'test extension',
      config: z.strictObject({}),
      create: () => ({}),
    }),
    defineProcessor({
      kind: 'processor',
      type: 'needy',
      stability: 'development',
      description: 'needs an extension',
      signals: ['flows'],
      config: z.strictObject({}),
      extensions: ['needs_nothing'],
      create: () => ({ process: (b) => b }),
    }),
  ]);

async function problemsOf(
  files: string[],
  env: NodeJS.ProcessEnv = {},
  registry = testRegistry(),
): Promise<string[]> {
  try {
    await loadConfig(files, registry, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['5s', 5000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['0', 0],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['5', '5 s', 's', '5x', '-1s', ''])('%j is not a duration', (text) =>
    expect(parseDuration(text)).toBeNull(),
  );
  it('formats back', () =>
    expect([90_000, 5000, 250, 3_600_000].map(formatDuration)).toEqual(['1m30s', '5s', '250ms', '1h']));
  // Node fires a timer asked to wait more than 2^31−1 ms after 1 ms: `start_timeout: 1000h` failed every
  // start at once, and `interval: 1000h` flushed at once.
  it('refuses what a timer cannot wait for, and says the limit', () => {
    const schema = duration({ min: 1 });
    expect(schema.parse('576h')).toBe(576 * 3_600_000);
    const long = schema.safeParse('1000h');
    expect(long.success).toBe(false);
    expect(long.error?.issues[0].message).toBe(
      '"1000h" is too long; the maximum is 576h (timers cannot wait longer)',
    );
    expect(576 * 3_600_000).toBeLessThan(2 ** 31 - 1);
    expect(duration({ max: 60_000 }).safeParse('2m').error?.issues[0].message).toBe(
      '"2m" is too long; the maximum is 1m',
    );
  });
});

describe('loadConfig', () => {
  // Configs written by the tests themselves, one folder for the whole file.
  let tmp = '';
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'netmon-cfg-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('merges files in order: maps key by key, lists replaced', async () => {
    const c = await loadConfig([file('base.yaml'), file('override.yaml')], testRegistry(), {});
    expect(c.components.receiver.get('gen')?.config).toEqual({ interval: 90_000, count: 1 });
    expect(c.pipelines).toEqual([
      {
        id: 'flows',
        signal: 'flows',
        receivers: ['gen'],
        processors: ['tag'],
        exporters: ['sink', 'sink/second'],
        queue: { size: 64, overflow: 'drop_oldest' },
      },
    ]);
    expect(c.components.exporter.get('sink/second')?.config).toEqual({ label: 'second', port: 1 });
    expect(c.components.exporter.get('sink/second')?.configDir).toBe(dir);
    expect(c.shutdownTimeoutMs).toBe(10_000);
  });

  it('names path, file, line and column of every problem at once', async () => {
    const problems = await problemsOf([file('broken.yaml')]);
    const f = rel('broken.yaml');
    expect(problems).toEqual([
      `${f}:3:5: receivers::gen::interval: "5 parsecs" is not a duration; expected e.g. 500ms, 5s or 1m30s`,
      `${f}:4:5: receivers::gen::colour: unknown key "colour"; expected one of: interval, count`,
      `${f}:13:25: service::pipelines::flows::processors::1: references processor "nope" which is not configured under processors`,
      `${f}:14:25: service::pipelines::flows::exporters::1: references exporter "missing" which is not configured under exporters`,
    ]);
  });

  it('a shutdown_timeout of 0s is refused: every stop would exit 1', async () => {
    const file = path.join(tmp, 'shutdown.yaml');
    await writeFile(
      file,
      'receivers: {gen: {}}\nexporters: {sink: {}}\nservice:\n  shutdown_timeout: 0s\n  start_timeout: 1000h\n  pipelines: {flows: {receivers: [gen], exporters: [sink]}}\n',
    );
    const problems = await problemsOf([file]);
    expect(problems.join('\n')).toContain('service::shutdown_timeout');
    expect(problems.join('\n')).toContain('"0s" is too short; the minimum is 100ms');
    expect(problems.join('\n')).toContain('"1000h" is too long; the maximum is 576h');
  });
  it('expands ${env:…} with defaults and types a whole-value reference', async () => {
    const f = path.join(tmp, 'env.yaml');
    await writeFile(
      f,
      [
        'receivers: { gen: { interval: "${env:READ_INTERVAL:-2s}", count: "${env:COUNT}" } }',
        'exporters: { sink: { label: "node ${env:NODE_NAME} costs $$5" } }',
        'service: { pipelines: { flows: { receivers: [gen], exporters: [sink] } } }',
      ].join('\n'),
    );
    const c = await loadConfig([f], testRegistry(), { COUNT: '42', NODE_NAME: 'n1' });
    expect(c.components.receiver.get('gen')?.config).toEqual({ interval: 2000, count: 42 });
    expect(c.components.exporter.get('sink')?.config).toEqual({ label: 'node n1 costs $5', port: 1 });
    const problems = await problemsOf([f], { NODE_NAME: 'n1' });
    expect(problems).toEqual([
      `${f}:1:59: receivers::gen::count: environment variable COUNT is not set (write \${env:COUNT:-default} to give a default)`,
    ]);
  });

  it('rejects unknown component types, bad ids, bad pipeline ids and unsupported signals', async () => {
    const f = path.join(tmp, 'bad.yaml');
    await writeFile(
      f,
      [
        'receivers:',
        '  kafka: {}',
        '  gen: {}',
        'processors:',
        '  needy: {}',
        'exporters:',
        '  "Sink": {}',
        '  sink: {}',
        'service:',
        '  pipelines:',
        '    traces: { receivers: [gen], exporters: [sink] }',
        '    dns: { receivers: [gen], exporters: [sink] }',
        '    flows: { receivers: [gen], processors: [needy], exporters: [sink] }',
      ].join('\n'),
    );
    const r = f; // outside the working directory: shown as given
    expect(await problemsOf([f])).toEqual([
      `${r}:2:3: receivers::kafka: unknown receiver type "kafka"; known types: gen, probe`,
      `${r}:5:3: processors::needy: needs the needs_nothing extension: add it under extensions and list it in service::extensions`,
      `${r}:7:3: exporters::Sink: a component id is \`type\` or \`type/name\` (type: lower_snake_case; name: no spaces or /); did you mean sink?`,
      `${r}:11:5: service::pipelines::traces: a pipeline id is \`signal[/name]\` with signal one of: flows, dns`,
      `${r}:12:24: service::pipelines::dns::receivers::0: receiver "gen" does not support dns (it supports: flows)`,
    ]);
  });

  it('reports YAML syntax errors and missing files with their place', async () => {
    const f = path.join(tmp, 'syntax.yaml');
    await writeFile(f, 'receivers:\n  gen: {interval: 5s\nservice: x\n');
    const good = path.join(tmp, 'good-but-wrong.yaml');
    await writeFile(good, 'receivers: { gen: { colour: blue } }\n');
    const absent = path.join(tmp, 'absent.yaml');
    // A syntax error stops the rest: what syntax.yaml sets is unknown, so good-but-wrong.yaml's colour is not
    // checked; every file is still read, so the missing one is named too, first (it has no place).
    expect(await problemsOf([f, absent, good])).toEqual([
      `cannot read config file ${absent}: ENOENT (no such file or directory)`,
      // The place is in the prefix; the message ends with what is wrong, not with a dangling "at line …:".
      `${f}:3:1: invalid YAML: Flow map in block collection must be sufficiently indented and end with a }`,
    ]);
  });

  it('a file that cannot be read is one problem; the other files are checked merged without it', async () => {
    const base = path.join(tmp, 'readable.yaml');
    await writeFile(
      base,
      [
        'receivers: { gen: { colour: blue } }',
        'exporters: { sink: {} }',
        'service: { pipelines: { flows: { receivers: [gen], exporters: [sink] } } }',
      ].join('\n'),
    );
    const absent = path.join(tmp, 'node-override.yaml');
    const folder = tmp;
    expect(await problemsOf([absent, base, folder])).toEqual([
      `cannot read config file ${absent}: ENOENT (no such file or directory); checked the other file without it`,
      `cannot read config file ${folder}: it is a directory, not a regular file; give the path of a YAML file; checked the other file without it`,
      `${base}:1:21: receivers::gen::colour: unknown key "colour"; expected one of: interval, count`,
    ]);
    // Nothing readable: nothing else to say.
    expect(await problemsOf([absent])).toEqual([
      `cannot read config file ${absent}: ENOENT (no such file or directory)`,
    ]);
    // What the readable files make is checked as a whole: valid without the missing file is still an error.
    await writeFile(
      base,
      'receivers: { gen: {} }\nexporters: { sink: {} }\nservice: { pipelines: { flows: { receivers: [gen], exporters: [sink] } } }\n',
    );
    expect(await problemsOf([base, absent])).toEqual([
      `cannot read config file ${absent}: ENOENT (no such file or directory); checked the other file without it`,
    ]);
  });

  // `validate --config fifo` blocked in open(2) forever, waiting for a writer.
  it('a FIFO as the config file is refused at once, not waited on', async () => {
    const fifo = path.join(tmp, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await problemsOf([fifo])).toEqual([
      `cannot read config file ${fifo}: it is a FIFO (named pipe), not a regular file; give the path of a YAML file`,
    ]);
  });

  it('names a file below the working directory relative to it, any other as given', async () => {
    expect(displayPath(path.join(process.cwd(), 'configs/x.yaml'))).toBe(path.join('configs', 'x.yaml'));
    expect(displayPath('/tmp/netmon/x.yaml')).toBe('/tmp/netmon/x.yaml');
    expect(displayPath(path.join(process.cwd(), '..foo.yaml'))).toBe('..foo.yaml');
    const f = path.join(tmp, 'dup.yaml');
    await writeFile(f, 'service: {}\nservice: {}\n');
    expect(await problemsOf([f])).toEqual([`${f}:2:1: invalid YAML: Map keys must be unique`]);
  });

  it('a bad value in the service section does not hide the other problems', async () => {
    const f = path.join(tmp, 'mixed.yaml');
    await writeFile(
      f,
      [
        'receivers: { gen: { colour: 1 } }',
        'exporters: { sink: {} }',
        'service:',
        '  shutdown_timeout: soon',
        '  pipelines:',
        '    flows: { receivers: [gen], exporters: [sink, nope], queue: { size: "8" } }',
      ].join('\n'),
    );
    const r = f; // outside the working directory: shown as given
    expect(await problemsOf([f])).toEqual([
      `${r}:1:21: receivers::gen::colour: unknown key "colour"; expected one of: interval, count`,
      `${r}:4:3: service::shutdown_timeout: "soon" is not a duration; expected e.g. 500ms, 5s or 1m30s`,
      `${r}:6:50: service::pipelines::flows::exporters::1: references exporter "nope" which is not configured under exporters`,
      `${r}:6:66: service::pipelines::flows::queue::size: expected number, received string`,
    ]);
  });

  it('keeps env values as written where a string is wanted, and types them where a number is', async () => {
    const f = path.join(tmp, 'env2.yaml');
    await writeFile(
      f,
      [
        'receivers: { gen: { count: "${env:COUNT}" } }',
        'exporters: { sink: { label: "${env:LABEL}", port: "${env:PORT}" }, sink/b: { label: "${env:EMPTY}" }, sink/c: { label: "${env:TOKEN}" } }',
        'service: { pipelines: { flows: { receivers: [gen], exporters: [sink, sink/b, sink/c] } } }',
      ].join('\n'),
    );
    const c = await loadConfig([f], testRegistry(), {
      COUNT: '7',
      LABEL: '/tmp/a #b',
      PORT: '9464',
      EMPTY: '',
      TOKEN: '0123',
    });
    expect(c.components.receiver.get('gen')?.config).toEqual({ interval: 10_000, count: 7 });
    expect(c.components.exporter.get('sink')?.config).toEqual({ label: '/tmp/a #b', port: 9464 });
    expect(c.components.exporter.get('sink/b')?.config).toEqual({ label: '', port: 1 });
    expect(c.components.exporter.get('sink/c')?.config).toEqual({ label: '0123', port: 1 });
  });

  it('types a whole-value reference as YAML reads a decimal number, and nothing more', async () => {
    const f = path.join(tmp, 'env3.yaml');
    await writeFile(
      f,
      [
        'receivers: { gen: { count: "${env:TOP}" } }',
        'exporters: { sink: { label: "${env:TOP}", port: "${env:PORT}" }, sink/b: { label: "${env:LIST}" }, sink/c: { label: "${env:NULL}" } }',
        'service: { pipelines: { flows: { receivers: [gen], exporters: [sink, sink/b, sink/c] } } }',
      ].join('\n'),
    );
    const c = await loadConfig([f], testRegistry(), {
      TOP: '007',
      PORT: '+9.464e3',
      LIST: '[a, b]',
      NULL: '~',
    });
    expect(c.components.receiver.get('gen')?.config).toEqual({ interval: 10_000, count: 7 });
    expect(c.components.exporter.get('sink')?.config).toEqual({ label: '007', port: 9464 });
    expect(c.components.exporter.get('sink/b')?.config).toEqual({ label: '[a, b]', port: 1 });
    expect(c.components.exporter.get('sink/c')?.config).toEqual({ label: '~', port: 1 });
    // Hexadecimal is YAML too, but not a decimal number: it stays a string.
    expect(await problemsOf([f], { TOP: '0x10', PORT: '1', LIST: '', NULL: '' })).toEqual([
      `${f}:1:21: receivers::gen::count: expected number, received string (from \${env:TOP})`,
    ]);
  });

  it('suggests the name meant: types, ids, keys, references, pipeline ids and values', async () => {
    const f = path.join(tmp, 'near.yaml');
    await writeFile(
      f,
      [
        'receivers:',
        '  gne: {}',
        '  tag: {}',
        '  genreceiver/a: {}',
        '  gen: { intervl: 5s }',
        'processors:',
        '  tag: {}',
        'exporters:',
        '  Sink/x: {}',
        '  sink/second: {}',
        '  sinc: {}',
        'extensions:',
        '  needs_nothing: {}',
        'servce: {}',
        'service:',
        '  extensions: [needs_nothin]',
        '  pipelnes: {}',
        '  telemetry: { logs: { level: INFO } }',
        '  pipelines:',
        '    flow/extra: { receivers: [gen], exporters: [sink/second] }',
        '    flows:',
        '      receivers: [gen, needs_nothing]',
        '      exporters: [sink, tag]',
        '      queue: { overflow: drop-oldest }',
      ].join('\n'),
    );
    expect(await problemsOf([f])).toEqual([
      `${f}:2:3: receivers::gne: unknown receiver type "gne"; did you mean gen? (known receiver types: gen, probe)`,
      `${f}:3:3: receivers::tag: unknown receiver type "tag"; tag is a processor type: configure it under processors (known receiver types: gen, probe)`,
      `${f}:4:3: receivers::genreceiver/a: unknown receiver type "genreceiver"; did you mean gen/a? (known receiver types: gen, probe)`,
      `${f}:5:10: receivers::gen::intervl: unknown key "intervl"; did you mean interval? (expected one of: interval, count)`,
      `${f}:9:3: exporters::Sink/x: a component id is \`type\` or \`type/name\` (type: lower_snake_case; name: no spaces or /); did you mean sink/x?`,
      `${f}:11:3: exporters::sinc: unknown exporter type "sinc"; did you mean sink? (known exporter types: sink)`,
      `${f}:14:1: servce: unknown key "servce"; did you mean service? (expected one of: receivers, processors, exporters, extensions, service)`,
      `${f}:16:16: service::extensions::0: references extension "needs_nothin" which is not configured under extensions; did you mean needs_nothing?`,
      `${f}:17:3: service::pipelnes: unknown key "pipelnes"; did you mean pipelines? (expected one of: extensions, pipelines, telemetry, shutdown_timeout, start_timeout, stall_timeout)`,
      `${f}:18:24: service::telemetry::logs::level: "INFO" is not one of: trace, debug, info, warn, error, fatal, silent; did you mean info?`,
      `${f}:20:5: service::pipelines::flow/extra: a pipeline id is \`signal[/name]\` with signal one of: flows, dns; did you mean flows/extra?`,
      `${f}:22:24: service::pipelines::flows::receivers::1: references receiver "needs_nothing" which is not configured under receivers; "needs_nothing" is configured under extensions: list it in service::extensions`,
      `${f}:23:19: service::pipelines::flows::exporters::0: references exporter "sink" which is not configured under exporters; did you mean sink/second?`,
      `${f}:23:25: service::pipelines::flows::exporters::1: references exporter "tag" which is not configured under exporters; "tag" is configured under receivers: list it in a pipeline's receivers; "tag" is configured under processors: list it in a pipeline's processors`,
      `${f}:24:16: service::pipelines::flows::queue::overflow: "drop-oldest" is not one of: drop_oldest, drop_newest; did you mean drop_oldest?`,
    ]);
  });

  it('points a renamed or moved key to where it is now, and an old type name to its new one', async () => {
    const registry = new Registry([
      ...testRegistry().all(),
      defineExporter({
        kind: 'exporter',
        type: 'queued',
        stability: 'development',
        description: 'an exporter with nested settings, as the gRPC ones have',
        signals: ['flows'],
        config: z.strictObject({
          sending_queue: z
            .strictObject({
              enabled: z.boolean().default(true),
              queue_size: z.number().default(10),
              directory: z.string().optional(),
            })
            .prefault({}),
          retry_on_failure: z
            .strictObject({
              enabled: z.boolean().default(true),
              max_interval: duration().prefault('30s'),
              max_elapsed_time: duration().prefault('0s'),
            })
            .prefault({}),
          // Names below a record are the user's: never offered as a moved key.
          headers: z.record(z.string(), z.strictObject({ value: z.string() })).default({}),
        }),
        create: () => ({ export: () => {} }),
      }),
      defineExporter({
        kind: 'exporter',
        type: 'debug',
        stability: 'development',
        description: 'prints',
        signals: ['flows'],
        config: z.strictObject({}),
        create: () => ({ export: () => {} }),
      }),
    ]);
    const f = path.join(tmp, 'renamed.yaml');
    await writeFile(
      f,
      [
        'receivers:',
        '  gen: {}',
        '  queued: {}',
        'exporters:',
        '  queued:',
        '    retry: { max_elapsed: 1s }',
        '    queue_size: 5',
        '    state_dir: /var/lib/netmon',
        '    enabled: true',
        '    max_elapsed: 1s',
        '    value: x',
        '    constructor: x',
        '    retry_on_failure: { max_elapsed: 10s }',
        '  sink: { state_dir: /tmp }',
        '  logging: {}',
        '  logging/verbose: {}',
        'service:',
        '  pipelines:',
        '    flows: { receivers: [gen], exporters: [queued] }',
        '    flow: { receivers: [gen], exporters: [queued] }',
        '    flow/b: { receivers: [gen], exporters: [queued] }',
      ].join('\n'),
    );
    const known = 'expected one of: sending_queue, retry_on_failure, headers';
    expect(await problemsOf([f], {}, registry)).toEqual([
      `${f}:3:3: receivers::queued: unknown receiver type "queued"; queued is an exporter type: configure it under exporters (known receiver types: gen, probe)`,
      `${f}:6:5: exporters::queued::retry: unknown key "retry"; did you mean retry_on_failure? (${known})`,
      `${f}:7:5: exporters::queued::queue_size: unknown key "queue_size"; did you mean sending_queue::queue_size? (${known})`,
      `${f}:8:5: exporters::queued::state_dir: unknown key "state_dir"; did you mean sending_queue::directory? (${known})`,
      `${f}:9:5: exporters::queued::enabled: unknown key "enabled"; did you mean sending_queue::enabled or retry_on_failure::enabled? (${known})`,
      `${f}:10:5: exporters::queued::max_elapsed: unknown key "max_elapsed"; did you mean retry_on_failure::max_elapsed_time? (${known})`,
      `${f}:11:5: exporters::queued::value: unknown key "value"; ${known}`,
      `${f}:12:5: exporters::queued::constructor: unknown key "constructor"; ${known}`,
      `${f}:13:25: exporters::queued::retry_on_failure::max_elapsed: unknown key "max_elapsed"; did you mean max_elapsed_time? (expected one of: enabled, max_interval, max_elapsed_time)`,
      // sink has no sending_queue::directory: no suggestion of a key that is not there.
      `${f}:14:11: exporters::sink::state_dir: unknown key "state_dir"; expected one of: label, port`,
      `${f}:15:3: exporters::logging: unknown exporter type "logging"; did you mean debug? (known exporter types: debug, queued, sink)`,
      `${f}:16:3: exporters::logging/verbose: unknown exporter type "logging"; did you mean debug/verbose? (known exporter types: debug, queued, sink)`,
      // A flows pipeline exists: renaming flow to it would make a duplicate.
      `${f}:20:5: service::pipelines::flow: a pipeline id is \`signal[/name]\` with signal one of: flows, dns`,
      `${f}:21:5: service::pipelines::flow/b: a pipeline id is \`signal[/name]\` with signal one of: flows, dns; did you mean flows/b?`,
    ]);
    // Without a debug exporter registered, logging gets no suggestion of a type that does not exist.
    await writeFile(
      f,
      'receivers: { gen: {} }\nexporters: { logging: {}, constructor: {} }\nservice: { pipelines: { flows: { receivers: [gen], exporters: [logging] } } }\n',
    );
    expect(await problemsOf([f])).toEqual([
      `${f}:2:14: exporters::logging: unknown exporter type "logging"; known types: sink`,
      `${f}:2:27: exporters::constructor: unknown exporter type "constructor"; known types: sink`,
    ]);
  });

  it('says which ${env:…} made an invalid value, also for the validate hooks and references', async () => {
    probed.length = 0;
    const f = path.join(tmp, 'from-env.yaml');
    await writeFile(
      f,
      [
        'receivers:',
        '  gen: { interval: "${env:IV}", count: "${env:COUNT:-many}" }',
        '  probe: { path: "${env:DIR}/in.jsonl" }',
        '  probe/b: { path: "${env:DIR}/${env:FILE:-}" }',
        'exporters:',
        '  sink: { port: "${env:PORT}", label: "${env:LABEL}" }',
        'service:',
        '  stall_timeout: ${env:STALL}',
        '  pipelines:',
        '    flows: { receivers: [gen, probe, probe/b], exporters: ["${env:OUT}"] }',
      ].join('\n'),
    );
    const env = { IV: 'soon', DIR: '/srv', FILE: '', PORT: '80a', LABEL: 'fine', STALL: '-1', OUT: 'sinc' };
    expect(await problemsOf([f], env)).toEqual([
      `${f}:2:10: receivers::gen::interval: "soon" is not a duration; expected e.g. 500ms, 5s or 1m30s (from \${env:IV})`,
      `${f}:2:33: receivers::gen::count: expected number, received string (from the default of \${env:COUNT:-many}, as COUNT is not set)`,
      `${f}:3:12: receivers::probe::path: cannot read /srv/in.jsonl (from \${env:DIR})`,
      `${f}:4:14: receivers::probe/b::path: cannot read /srv/ (from \${env:DIR} and the default of \${env:FILE:-}, as FILE is empty)`,
      `${f}:6:11: exporters::sink::port: expected number, received string (from \${env:PORT})`,
      // -1 is typed as a number, as a whole-value reference is.
      `${f}:8:3: service::stall_timeout: expected a duration such as 500ms, 5s or 1m30s (from \${env:STALL})`,
      `${f}:10:60: service::pipelines::flows::exporters::0: references exporter "sinc" which is not configured under exporters; did you mean sink? (from \${env:OUT})`,
    ]);
    expect(probed).toEqual(['/srv/in.jsonl', '/srv/']);
  });

  // A token set in the wrong key, or a URL with a password, was printed verbatim: errors reach logs.
  it('never echoes the value of a variable named as a credential, nor the credentials of a URL', async () => {
    const f = path.join(tmp, 'secret.yaml');
    await writeFile(
      f,
      [
        'receivers:',
        '  gen: { interval: "${env:CLUSTER_TOKEN}" }',
        '  probe: { path: "https://bob:hun@ter2@example.com/x" }',
        '  probe/b: { path: "${env:DATA_DIR}/x" }',
        'exporters: { sink: {} }',
        'service: { pipelines: { flows: { receivers: [gen, probe, probe/b], exporters: [sink] } } }',
      ].join('\n'),
    );
    const problems = await problemsOf([f], { CLUSTER_TOKEN: 's3cr3t-t0ken-value', DATA_DIR: '/srv/flows' });
    expect(problems).toEqual([
      `${f}:2:10: receivers::gen::interval: "\${env:CLUSTER_TOKEN}" is not a duration; expected e.g. 500ms, 5s or 1m30s (from \${env:CLUSTER_TOKEN})`,
      `${f}:3:12: receivers::probe::path: cannot read https://***@example.com/x`,
      // Not named as a credential: what is wrong with it is the point of the message.
      `${f}:4:14: receivers::probe/b::path: cannot read /srv/flows/x (from \${env:DATA_DIR})`,
    ]);
    expect(problems.join('\n')).not.toMatch(/s3cr3t|hun|ter2|bob/);
  });

  it('lists schema, reference and validate-hook problems together, skipping only what one problem makes meaningless', async () => {
    probed.length = 0;
    const f = path.join(tmp, 'all.yaml');
    await writeFile(
      f,
      [
        'receivers:',
        '  gen: { colour: blue }',
        '  probe: { path: missing }',
        '  probe/typed: { path: 3 }',
        '  probe/env: { path: "${env:UNSET}" }',
        '  probe/hang: { path: hang }',
        '  probe/throw: { path: throw }',
        '  probe/fine: {}',
        'exporters: { sink: {} }',
        'service:',
        '  start_timeout: 50ms',
        '  pipelines:',
        '    flows:',
        '      receivers: [gen, probe, probe/typed, probe/env, probe/hang, probe/throw, probe/fine]',
        '      exporters: [sink, nope]',
      ].join('\n'),
    );
    expect(await problemsOf([f])).toEqual([
      `${f}:2:10: receivers::gen::colour: unknown key "colour"; expected one of: interval, count`,
      `${f}:3:12: receivers::probe::path: cannot read missing`,
      `${f}:4:18: receivers::probe/typed::path: expected string, received number`,
      `${f}:5:16: receivers::probe/env::path: environment variable UNSET is not set (write \${env:UNSET:-default} to give a default)`,
      `${f}:6:3: receivers::probe/hang: its checks did not finish within service::start_timeout (50ms), e.g. a plugin module whose top-level code never finishes loading`,
      `${f}:7:3: receivers::probe/throw: the probe broke`,
      `${f}:15:25: service::pipelines::flows::exporters::1: references exporter "nope" which is not configured under exporters`,
    ]);
    // Not for probe/typed (no valid config to check) nor probe/env (it would check '').
    expect(probed).toEqual(['missing', 'hang', 'throw', 'ok']);
  });

  it('the validate hooks run when everything else is right, and a valid config loads', async () => {
    probed.length = 0;
    const f = path.join(tmp, 'hooks.yaml');
    await writeFile(
      f,
      [
        'receivers: { probe: {}, probe/b: { path: gone } }',
        'exporters: { sink: {} }',
        'service: { pipelines: { flows: { receivers: [probe, probe/b], exporters: [sink] } } }',
      ].join('\n'),
    );
    expect(await problemsOf([f])).toEqual([`${f}:1:36: receivers::probe/b::path: cannot read gone`]);
    await writeFile(
      f,
      [
        'receivers: { probe: {} }',
        'exporters: { sink: {} }',
        'service: { pipelines: { flows: { receivers: [probe], exporters: [sink] } } }',
      ].join('\n'),
    );
    const c = await loadConfig([f], testRegistry(), {});
    expect(c.components.receiver.get('probe')?.config).toEqual({ path: 'ok' });
    expect(c.startTimeoutMs).toBe(30_000);
  });

  it('requires a service with at least one pipeline', async () => {
    const f = path.join(tmp, 'empty.yaml');
    await writeFile(f, 'receivers: {gen: {}}\n');
    expect(await problemsOf([f])).toEqual([`${f}:1:1: service: required: expected object`]);
  });
});

// Two components that collide once running: found by validate, naming both, at the later one's key.
describe('claims', () => {
  const registry = new Registry([
    defineReceiver({
      kind: 'receiver',
      type: 'reader',
      stability: 'development',
      description: 'reads a file',
      signals: ['flows'],
      config: z.strictObject({ path: z.string().default('in.jsonl') }),
      claims: (c, ctx) => [{ kind: 'read', key: 'path', path: path.resolve(ctx.configDir, c.path) }],
      create: () => ({}),
    }),
    defineExporter({
      kind: 'exporter',
      type: 'writer',
      stability: 'development',
      description: 'writes a file and serves a port',
      signals: ['flows'],
      config: z.strictObject({
        path: z.string().default('out.jsonl'),
        endpoint: z.string().default('127.0.0.1:9464'),
      }),
      claims: (c, ctx) => [
        { kind: 'write', key: 'path', path: path.resolve(ctx.configDir, c.path) },
        { kind: 'listen', key: 'endpoint', endpoint: c.endpoint },
      ],
      create: () => ({ export: () => {} }),
    }),
    defineExtension({
      kind: 'extension',
      type: 'server',
      stability: 'development',
      description: 'serves a port',
      config: z.strictObject({ endpoint: z.string().default('127.0.0.1:8081') }),
      claims: (c) => [{ kind: 'listen', key: 'endpoint', endpoint: c.endpoint }],
      create: () => ({}),
    }),
  ]);
  let tmp = '';
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'netmon-claims-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  const configWith = async (lines: string[]) => {
    const f = path.join(tmp, 'c.yaml');
    await writeFile(f, lines.join('\n'));
    return f;
  };

  it('an exporter writing the file a receiver reads is refused', async () => {
    const f = await configWith([
      'receivers: { reader: { path: flows.jsonl } }',
      `exporters: { writer: { path: ${path.join(tmp, 'flows.jsonl')} } }`,
      'service: { pipelines: { flows: { receivers: [reader], exporters: [writer] } } }',
    ]);
    expect(await problemsOf([f], {}, registry)).toEqual([
      `${f}:2:24: exporters::writer::path: ${path.join(tmp, 'flows.jsonl')} is read by one component and written by the other (receivers::reader::path): the reader would read back the writer's output, counting every record again; write to another file`,
    ]);
  });

  it('two components on one port are refused; a wildcard host collides with every host', async () => {
    const f = await configWith([
      'receivers: { reader: {} }',
      'exporters: { writer: { endpoint: "0.0.0.0:8081" }, writer/2: { endpoint: "127.0.0.1:9999", path: b.jsonl } }',
      'extensions: { server: { endpoint: "127.0.0.1:8081" } }',
      'service:',
      '  extensions: [server]',
      '  pipelines: { flows: { receivers: [reader], exporters: [writer, writer/2] } }',
    ]);
    expect(await problemsOf([f], {}, registry)).toEqual([
      `${f}:2:24: exporters::writer::endpoint: 0.0.0.0:8081 collides with extensions::server::endpoint (127.0.0.1:8081): two components cannot serve one port; give each its own port (or, where one can, serve both from one component)`,
    ]);
  });

  it('distinct hosts, port 0, and components no pipeline uses do not collide', async () => {
    const f = await configWith([
      'receivers: { reader: {} }',
      'exporters:',
      '  writer: { endpoint: "127.0.0.2:8081" }',
      '  writer/any: { endpoint: "0.0.0.0:0", path: b.jsonl }',
      '  writer/unused: { endpoint: "0.0.0.0:8081", path: in.jsonl }',
      'extensions: { server: { endpoint: "127.0.0.1:8081" } }',
      'service:',
      '  extensions: [server]',
      '  pipelines: { flows: { receivers: [reader], exporters: [writer, writer/any] } }',
    ]);
    await expect(loadConfig([f], registry, {})).resolves.toBeDefined();
  });
});

describe('configuration made in memory, and printed', () => {
  const doc = (text: string, name = '<command line>') => ({ name, text, dir: '/srv/netmon' });
  const pipeline =
    'receivers: {gen: {}}\nexporters: {sink: {label: "${env:SINK_LABEL:-x}"}}\nservice: {pipelines: {flows: {receivers: [gen], exporters: [sink]}}}\n';

  it('a document merges like a file, its problems are placed in it, and its relative paths resolve in its dir', async () => {
    const c = await loadConfig(
      [doc(pipeline), doc('receivers: {gen: {count: 3}}\n', 'flags')],
      testRegistry(),
      {},
    );
    expect(c.components.receiver.get('gen')?.config).toEqual({ interval: 10_000, count: 3 });
    expect(c.components.receiver.get('gen')?.configDir).toBe('/srv/netmon');
    await expect(
      loadConfig([doc(pipeline), doc('\nreceivers: {gen: {count: many}}\n', 'flags')], testRegistry(), {}),
    ).rejects.toThrow(/^flags:2:19: receivers::gen::count: /);
  });

  it('printableConfig expands the environment but shows credentials as their reference', async () => {
    const withSecret = doc(pipeline.replace('${env:SINK_LABEL:-x}', '${env:API_TOKEN}-${env:SINK_LABEL:-x}'));
    const tree = await printableConfig([withSecret], testRegistry(), {
      API_TOKEN: 'sekrit-123456',
      SINK_LABEL: 'blue',
    });
    expect(tree.exporters).toEqual({ sink: { label: '${env:API_TOKEN}-blue' } });
    expect(JSON.stringify(tree)).not.toContain('sekrit');
  });

  it('printableConfig hides literal credentials: credential keys and every header value, not paths', async () => {
    const registry = new Registry([
      ...testRegistry().all(),
      defineExporter({
        kind: 'exporter',
        type: 'remote',
        stability: 'development',
        description: 'an exporter with credentials',
        signals: ['flows'],
        config: z.strictObject({
          headers: z.record(z.string(), z.string()).default({}),
          api_key: z.string().optional(),
          key_file: z.string().optional(),
          password: z.string().optional(),
        }),
        create: () => ({ export: () => {} }),
      }),
    ]);
    const text =
      'receivers: {gen: {}}\nexporters:\n  remote:\n    headers: {x-honeycomb-team: hc-123456, x-tenant: "${env:TENANT}"}\n' +
      '    api_key: ak-123456\n    key_file: /etc/tls/key.pem\n    password: "${env:DB_PASSWORD}"\n' +
      'service: {pipelines: {flows: {receivers: [gen], exporters: [remote]}}}\n';
    const tree = await printableConfig([doc(text)], registry, { TENANT: 'acme', DB_PASSWORD: 'pw-123456' });
    expect(tree.exporters).toEqual({
      remote: {
        headers: { 'x-honeycomb-team': '<redacted>', 'x-tenant': '<redacted>' },
        api_key: '<redacted>',
        key_file: '/etc/tls/key.pem',
        password: '${env:DB_PASSWORD}',
      },
    });
  });

  it('printableConfig refuses what run refuses', async () => {
    await expect(printableConfig([doc(`${pipeline}bogus: {}\n`)], testRegistry(), {})).rejects.toThrow(
      /bogus/,
    );
  });
});
