import {
  ConfigError,
  createLogger,
  LOG_LEVELS,
  type LogLevel,
  loadConfig,
  Service,
  silentLogger,
} from '@netmon/core';
import { Command, Option } from 'commander';
import { defaultRegistry } from './components.js';
import { runAgent } from './run.js';
import { VERSION } from './version.js';

const EXIT_INVALID_CONFIG = 2;

// Variadic, and commander appends when the option is repeated: `-c a.yaml b.yaml` and `-c a.yaml -c b.yaml`
// both give [a.yaml, b.yaml].
const configOption = () =>
  new Option(
    '-c, --config <file...>',
    'pipeline config files (YAML), merged in order: later files win; list several or repeat -c',
  ).makeOptionMandatory();

const logLevelOption = () =>
  new Option('--log-level <level>', 'log level, overriding service::telemetry::logs::level').choices(
    LOG_LEVELS as unknown as string[],
  );

function reportConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(
      `netmon: invalid configuration (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}):\n`,
    );
    for (const line of err.message.split('\n')) process.stderr.write(`  ${line}\n`);
    process.exit(EXIT_INVALID_CONFIG);
  }
  throw err;
}

export function buildProgram(): Command {
  const program = new Command('netmon')
    .description(
      'netmon: per-node network-flow agent. Reads flows from the kernel, labels them with workloads,\n' +
        'destination class and cost, and exports them to Prometheus, OTLP and DevZero.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  netmon run --config configs/default.yaml
  netmon run -c base.yaml node-overrides.yaml --log-level debug
  NODE_NAME=node-1 netmon validate -c configs/kubernetes.yaml
  netmon components

Docs: docs/configuration.md (config), docs/architecture.md, docs/operations.md`,
    );

  program
    .command('run')
    .description('run the agent until SIGTERM/SIGINT, then drain in-flight data and exit')
    .addOption(configOption())
    .addOption(logLevelOption())
    .addHelpText(
      'after',
      `
Exit codes: 0 stopped cleanly, 1 could not start or lost data on shutdown, 2 invalid configuration.
Logs are JSON lines on stderr unless stderr is a terminal.`,
    )
    .action(async (opts: { config: string[]; logLevel?: LogLevel }) => {
      try {
        const code = await runAgent({
          configFiles: opts.config,
          registry: defaultRegistry(),
          logger: (level) => createLogger({ level }),
          logLevel: opts.logLevel,
        });
        process.exit(code);
      } catch (err) {
        if (err instanceof ConfigError) reportConfigError(err);
        process.stderr.write(`netmon: could not start: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });

  program
    .command('validate')
    .description('check config files completely (schema, references, plugins) without starting anything')
    .addOption(configOption())
    .addHelpText(
      'after',
      '\nExit codes: 0 valid, 2 invalid (each problem printed as file:line:column: path: message).',
    )
    .action(async (opts: { config: string[] }) => {
      try {
        const config = await loadConfig(opts.config, defaultRegistry());
        // Building creates every component (plugins are loaded) without starting any.
        await Service.build(config, { logger: silentLogger() });
        const n = config.pipelines.length;
        process.stdout.write(
          `configuration is valid: ${n} pipeline${n === 1 ? '' : 's'} (${config.pipelines.map((p) => p.id).join(', ')})\n`,
        );
      } catch (err) {
        if (err instanceof ConfigError) reportConfigError(err);
        process.stderr.write(`netmon: invalid configuration:\n  ${(err as Error).message}\n`);
        process.exit(EXIT_INVALID_CONFIG);
      }
    });

  program
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

  program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`netmon ${VERSION} (node ${process.version})\n`);
    });

  return program;
}
