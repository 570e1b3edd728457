import {
  ConfigError,
  type ConfigInput,
  configToYaml,
  createLogger,
  LOG_LEVELS,
  type LogLevel,
  loadConfig,
  loadPrettyLogs,
  parseDuration,
  printableConfig,
} from '@netmon/core';
import { Command, Option } from 'commander';
import { defaultRegistry } from './components.js';
import { VERSION } from './version.js';
import { collectionMode, normalizeArgs, parseBool, ZXPORTER_FLAGS } from './zxporter/flags.js';

// One code for "what you gave is wrong, nothing was started": a bad command line or a bad configuration.
// Retrying cannot help either; 1 stays for failures at run time, which a restart might get past.
const EXIT_INVALID_CONFIG = 2;
const EXIT_USAGE = 2;

// Variadic, and commander appends when the option is repeated: `-c a.yaml b.yaml` and `-c a.yaml -c b.yaml`
// both give [a.yaml, b.yaml]. Not commander's "mandatory": its message says what is missing, not what to
// type (see configFiles).
const configOption = () =>
  new Option(
    '-c, --config <file...>',
    "pipeline config files (YAML), merged in order: later files win; list several or repeat -c (required, unless --zxporter or one of zxporter-netmon's flags is given: then they merge over its pipeline)",
  );

/**
 * Usage errors (unknown option or command, a bad --log-level, no config) print `netmon run: <problem>` and
 * where to read more, and exit EXIT_USAGE; --help and --version still exit 0.
 */
function usageErrors(cmd: Command, name: string): Command {
  return cmd
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, `${name}: `)) })
    .showHelpAfterError(`(run '${name} --help' for usage)`)
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));
}

/** The config files of `run`/`validate`, or a usage error that shows the command to type. */
function configFiles(cmd: Command, opts: { config?: string[] }): string[] {
  const name = `netmon ${cmd.name()}`;
  // A file given without -c is the usual slip: show the command with it in the right place.
  if (cmd.args.length > 0) {
    const files = [...cmd.args, ...(opts.config ?? [])];
    cmd.error(
      `${name}: unexpected argument${cmd.args.length === 1 ? '' : 's'} ${cmd.args.join(' ')}: config files follow -c/--config, e.g. ${name} -c ${files.join(' ')}`,
      { exitCode: EXIT_USAGE, code: 'netmon.unexpectedArgument' },
    );
  }
  if (!opts.config || opts.config.length === 0) {
    cmd.error(
      `${name}: no config file given: name it with -c/--config, e.g. ${name} -c configs/default.yaml`,
      {
        exitCode: EXIT_USAGE,
        code: 'netmon.noConfig',
      },
    );
  }
  return opts.config;
}

const logLevelOption = () =>
  new Option('--log-level <level>', 'log level, overriding service::telemetry::logs::level').choices(
    LOG_LEVELS as unknown as string[],
  );

function reportConfigError(err: unknown): never {
  const lines = err instanceof ConfigError ? err.message.split('\n') : [(err as Error).message];
  process.stderr.write(
    `netmon: invalid configuration (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n`,
  );
  for (const line of lines) process.stderr.write(`  ${line}\n`);
  process.exit(EXIT_INVALID_CONFIG);
}

/** The options `run` and `validate` share: what to load. */
interface InputOptions {
  config?: string[];
  zxporter?: boolean;
  collectorMode?: string;
  readInterval?: string;
  cleanupInterval?: string;
  metricsBindAddress?: string;
  standalone?: string | boolean;
  metricsKubeconfig?: string;
}

interface RunCommandOptions extends InputOptions {
  logLevel?: LogLevel;
  printConfig?: boolean;
}

const ZXPORTER_GROUP = "zxporter-netmon's flags (one dash or two):";

/** --zxporter and zxporter-netmon's flags, for `run` and `validate` alike. */
function addZxporterOptions(cmd: Command, zxporterHelp: string): Command {
  cmd.addOption(new Option('--zxporter', zxporterHelp).helpGroup(ZXPORTER_GROUP));
  for (const [name, flag] of Object.entries(ZXPORTER_FLAGS))
    cmd.addOption(new Option(`--${name} ${flag.value}`, flag.help).helpGroup(ZXPORTER_GROUP));
  return cmd;
}

/**
 * What `run` loads, and so what `validate` checks: the -c files; or, with --zxporter or any of
 * zxporter-netmon's flags, its pipeline with the flags applied, then the -c files over it. A bad flag value
 * is a usage error, as in zxporter-netmon.
 */
async function runInputs(cmd: Command, opts: InputOptions): Promise<ConfigInput[]> {
  const zxporter =
    opts.zxporter ||
    [
      opts.collectorMode,
      opts.readInterval,
      opts.cleanupInterval,
      opts.metricsBindAddress,
      opts.standalone,
      opts.metricsKubeconfig,
    ].some((v) => v !== undefined);
  if (!zxporter) return configFiles(cmd, opts);
  if (cmd.args.length > 0) configFiles(cmd, opts); // says how to give the stray argument
  const usage = (message: string): never =>
    cmd.error(`netmon ${cmd.name()}: ${message}`, { exitCode: EXIT_USAGE, code: 'netmon.zxporterFlag' });
  let mode: string | undefined;
  if (opts.collectorMode !== undefined) {
    const m = collectionMode(opts.collectorMode);
    mode = 'mode' in m ? m.mode : usage(m.error);
  }
  for (const [flag, value] of [
    ['read-interval', opts.readInterval],
    ['cleanup-interval', opts.cleanupInterval],
  ] as const) {
    if (value !== undefined && parseDuration(value) === null)
      usage(`-${flag}=${value}: expected a duration such as 5s, 1m or 1m30s`);
  }
  const standalone = opts.standalone === undefined ? undefined : parseBool(opts.standalone);
  if (opts.standalone !== undefined && standalone === undefined)
    usage(`-standalone=${opts.standalone}: expected true or false`);
  const { zxporterDocuments } = await import('./zxporter/pipeline.js');
  const docs = await zxporterDocuments({
    mode,
    readInterval: opts.readInterval,
    cleanupInterval: opts.cleanupInterval,
    metricsBindAddress: opts.metricsBindAddress,
    standalone,
    metricsKubeconfig: opts.metricsKubeconfig,
  });
  return [...docs, ...(opts.config ?? [])];
}

/** How the agent says `-cleanup-interval` does nothing, at start (run) and when checked (validate). */
const cleanupIntervalNote = (value: string) =>
  `-cleanup-interval=${value} is accepted and has no effect: netmon forgets a connection when the kernel reports it gone, not on a timer`;

/** Each input's name, in merge order: a file's path; the zxporter documents' first comment line. */
const sourcesOf = (inputs: readonly ConfigInput[]) =>
  inputs.map((i) => (typeof i === 'string' ? i : (/^# (.*)/.exec(i.text)?.[1] ?? i.name)));

/**
 * The command line (after `node netmon.js`) as `program` is to parse it: zxporter-netmon's single-dash flags
 * spelled as commander reads them, `run` in front of its container args. A Go-style option no command takes
 * (`-colector-mode=ebpf`, which commander would read as `-c olector-mode=ebpf`) is a usage error that quotes
 * it as typed.
 */
export function commandLine(program: Command, argv: readonly string[]): string[] {
  const { args, unknown } = normalizeArgs(argv, program.commands);
  if (unknown) {
    const cmd = program.commands.find((c) => c.name() === unknown.command) ?? program;
    // As commander says it (outputError puts the command in place of `error:`), suggestion included.
    cmd.error(
      `error: unknown option '${unknown.arg}'${unknown.suggestion ? `\n(Did you mean ${unknown.suggestion}?)` : ''}`,
      { exitCode: EXIT_USAGE, code: 'commander.unknownOption' },
    );
  }
  return args;
}

export function buildProgram(): Command {
  const program = new Command('netmon')
    .description(
      'netmon: per-node network-flow agent. Reads flows from the kernel, labels them with workloads, ' +
        'destination class and cost, and exports them to Prometheus, OTLP and DevZero.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .addHelpText(
      'after',
      `
Examples:
  netmon run --config configs/default.yaml
  netmon run -c base.yaml node-overrides.yaml --log-level debug
  NODE_NAME=node-1 POD_IP=10.0.0.5 netmon run -c configs/kubernetes.yaml --print-config
  netmon -collector-mode=netfilter           as zxporter-netmon: its flags and env (DAKR_URL, CLUSTER_TOKEN, ...)
  NODE_NAME=node-1 POD_IP=10.0.0.5 netmon validate -c configs/kubernetes.yaml
  netmon validate -collector-mode=netfilter  what netmon -collector-mode=netfilter would run, checked
  netmon components

Exit codes: 0 success; 1 could not start, or lost data on shutdown (run); 2 invalid command line or
configuration (nothing was started).

Docs: docs/configuration.md (config), docs/architecture.md, docs/operations.md`,
    );
  usageErrors(program, 'netmon');

  const run = program
    .command('run')
    .description('run the agent until SIGTERM/SIGINT, then drain in-flight data and exit')
    .addOption(configOption())
    .addOption(logLevelOption())
    .option(
      '--print-config',
      'print the configuration the files, flags and environment make (merged, environment references expanded, credentials hidden) and exit',
    );
  addZxporterOptions(
    run,
    "run zxporter-netmon's pipeline (configs/devzero.yaml: DevZero's control plane from DAKR_URL, CLUSTER_TOKEN, CLUSTER_ID, FLUSH_INTERVAL, NODE_NAME); implied by any flag below; -c files merge over it",
  )
    .addHelpText(
      'after',
      `
Examples:
  netmon run -c configs/default.yaml
  NODE_NAME=node-1 POD_IP=10.0.0.5 netmon run -c configs/kubernetes.yaml --print-config
  netmon -collector-mode=netfilter             zxporter-netmon's container args: the same as netmon run -collector-mode=…
  DAKR_URL=https://dakr.devzero.io CLUSTER_TOKEN=… netmon run --zxporter -read-interval=10s

Exit codes: 0 stopped cleanly, 1 could not start or lost data on shutdown, 2 invalid configuration or
command line (nothing was started; every configuration problem is listed as file:line:column: path: problem).
Logs are JSON lines on stderr unless stderr is a terminal.`,
    )
    .allowExcessArguments()
    .action(async (opts: RunCommandOptions, cmd: Command) => {
      const inputs = await runInputs(cmd, opts);
      if (opts.printConfig) {
        try {
          const tree = await printableConfig(inputs, defaultRegistry());
          // Each source on a line of the header, in merge order; the flags' document says which flags.
          const sources = sourcesOf(inputs);
          process.stdout.write(
            `# What netmon run would run${sources.length === 1 ? '' : ': these, merged in order,'} with this environment (credentials hidden):\n${sources.map((s) => `#   ${s}\n`).join('')}${configToYaml(tree)}`,
          );
          process.exit(0);
        } catch (err) {
          reportConfigError(err);
        }
      }
      try {
        // The agent's own machinery (the metrics SDK) loads only to run: validate and components stay light.
        const { runAgent } = await import('./run.js');
        await loadPrettyLogs();
        const code = await runAgent({
          configFiles: inputs,
          registry: defaultRegistry(),
          logger: (level) => createLogger({ level }),
          logLevel: opts.logLevel,
          notes: opts.cleanupInterval ? [cleanupIntervalNote(opts.cleanupInterval)] : [],
        });
        process.exit(code);
      } catch (err) {
        if (err instanceof ConfigError) reportConfigError(err);
        process.stderr.write(`netmon: could not start: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });

  usageErrors(run, 'netmon run');

  const validate = program
    .command('validate')
    .description(
      "check config files completely (schema, references, pipelines, files, plugins) without starting anything, listing every problem at once; with zxporter-netmon's flags, the pipeline netmon run makes of them",
    )
    .addOption(configOption());
  addZxporterOptions(
    validate,
    "check zxporter-netmon's pipeline (configs/devzero.yaml, with the environment it reads), as run --zxporter would run it; implied by any flag below; -c files merge over it",
  )
    .addHelpText(
      'after',
      `
Examples:
  netmon validate -c configs/default.yaml
  NODE_NAME=node-1 POD_IP=10.0.0.5 netmon validate -c configs/kubernetes.yaml
  netmon validate -collector-mode=netfilter    what netmon -collector-mode=netfilter would run here

Exit codes: 0 valid; 2 invalid configuration (every problem of every file, sorted by file and line, each
as file:line:column: path: problem, with a "did you mean" for near misses) or invalid command line.`,
    )
    .allowExcessArguments()
    .action(async (opts: InputOptions, cmd: Command) => {
      const inputs = await runInputs(cmd, opts);
      try {
        // Every check short of creating the components: the schemas, the references, and each factory's
        // validate hook (files exist, plugins load). Creating them would load every implementation, with its
        // heavy dependencies, for a command that must stay light.
        const config = await loadConfig(inputs, defaultRegistry());
        const n = config.pipelines.length;
        process.stdout.write(
          `configuration is valid: ${n} pipeline${n === 1 ? '' : 's'} (${config.pipelines.map((p) => p.id).join(', ')})\n`,
        );
        // With zxporter-netmon's flags nothing on the command line names the files: say what was checked.
        if (inputs.some((i) => typeof i !== 'string')) {
          process.stdout.write(
            `checked, merged in order:\n${sourcesOf(inputs)
              .map((s) => `  ${s}\n`)
              .join('')}`,
          );
        }
        if (opts.cleanupInterval)
          process.stderr.write(`netmon validate: note: ${cleanupIntervalNote(opts.cleanupInterval)}\n`);
        // Checking loaded the plugin modules, whose top-level code may have started timers (a setInterval)
        // that would keep validate from ever ending.
        process.exit(0);
      } catch (err) {
        reportConfigError(err);
      }
    });
  usageErrors(validate, 'netmon validate');

  const components = program
    .command('components')
    .description('list every component type this build knows, with kind, signals and stability')
    .option('--json', 'print JSON instead of a table')
    .action((opts: { json?: boolean }) => {
      const rows = defaultRegistry()
        .all()
        .map((f) => ({
          kind: f.kind,
          type: f.type,
          signals: 'signals' in f ? f.signals.join(',') : '-',
          stability: f.stability,
          description: f.description,
        }));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const widths = ['kind', 'type', 'signals', 'stability'].map((k) =>
        Math.max(k.length, ...rows.map((r) => String(r[k as keyof typeof r]).length)),
      );
      const line = (cells: string[]) =>
        `${cells.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c)).join('  ')}\n`;
      process.stdout.write(line(['KIND', 'TYPE', 'SIGNALS', 'STABILITY', 'DESCRIPTION']));
      for (const r of rows)
        process.stdout.write(line([r.kind, r.type, r.signals, r.stability, r.description]));
    });
  usageErrors(components, 'netmon components');

  const version = program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`netmon ${VERSION} (node ${process.version})\n`);
    });
  usageErrors(version, 'netmon version');

  return program;
}
