import { type Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from './program.js';

/** Parses `argv` with the real options, but records each command's options instead of running it. */
async function optionsOf(argv: string[]): Promise<Record<string, unknown>> {
  const program = buildProgram().exitOverride();
  let seen: Record<string, unknown> = {};
  for (const command of program.commands as Command[]) {
    command.exitOverride().action((opts: Record<string, unknown>) => {
      seen = opts;
    });
  }
  await program.parseAsync(argv, { from: 'user' });
  return seen;
}

describe('--config', () => {
  it.each(['run', 'validate'])('%s takes several files after one --config, or a repeated -c', async (cmd) => {
    expect((await optionsOf([cmd, '--config', 'a.yaml', 'b.yaml'])).config).toEqual(['a.yaml', 'b.yaml']);
    expect((await optionsOf([cmd, '-c', 'a.yaml', '-c', 'b.yaml'])).config).toEqual(['a.yaml', 'b.yaml']);
    expect((await optionsOf([cmd, '-c', 'a.yaml', 'b.yaml', '-c', 'c.yaml'])).config).toEqual([
      'a.yaml',
      'b.yaml',
      'c.yaml',
    ]);
  });

  it('stops at the next option', async () => {
    expect(await optionsOf(['run', '-c', 'a.yaml', 'b.yaml', '--log-level', 'debug'])).toEqual({
      config: ['a.yaml', 'b.yaml'],
      logLevel: 'debug',
    });
  });
});

describe("zxporter-netmon's flags", () => {
  it.each(['run', 'validate'])('%s takes them, and --zxporter, with -c files', async (cmd) => {
    expect(
      await optionsOf([
        cmd,
        '--collector-mode=ebpf',
        '--read-interval',
        '10s',
        '--cleanup-interval=2m',
        '--metrics-bind-address=:8081',
        '--standalone',
        '--metrics-kubeconfig',
        'kc',
        '--zxporter',
        '-c',
        'a.yaml',
      ]),
    ).toEqual({
      collectorMode: 'ebpf',
      readInterval: '10s',
      cleanupInterval: '2m',
      metricsBindAddress: ':8081',
      standalone: true,
      metricsKubeconfig: 'kc',
      zxporter: true,
      config: ['a.yaml'],
    });
  });
});

/** Runs `argv` with the real actions, capturing what a usage error prints and the code it exits with. */
async function usageErrorOf(argv: string[]): Promise<{ exitCode: number; code: string; stderr: string }> {
  const program = buildProgram();
  let stderr = '';
  for (const command of [program, ...(program.commands as Command[])]) {
    command.exitOverride();
    command.configureOutput({ ...command.configureOutput(), writeErr: (text) => (stderr += text) });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { exitCode: err.exitCode, code: err.code, stderr };
    throw err;
  }
  throw new Error('expected a usage error');
}

describe('usage errors', () => {
  it.each(['run', 'validate'])('%s without --config exits 2 and shows the command to type', async (cmd) => {
    expect(await usageErrorOf([cmd])).toEqual({
      exitCode: 2,
      code: 'netmon.noConfig',
      stderr: `netmon ${cmd}: no config file given: name it with -c/--config, e.g. netmon ${cmd} -c configs/default.yaml\n(run 'netmon ${cmd} --help' for usage)\n`,
    });
  });

  it('a config file given without -c is shown where it belongs', async () => {
    const r = await usageErrorOf(['validate', 'a.yaml', 'b.yaml', '-c', 'c.yaml']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      'netmon validate: unexpected arguments a.yaml b.yaml: config files follow -c/--config, e.g. netmon validate -c a.yaml b.yaml c.yaml',
    );
  });

  it("commander's own errors are prefixed with the command", async () => {
    const r = await usageErrorOf(['validate', '--colour', '-c', 'a.yaml']);
    expect(r.code).toBe('commander.unknownOption');
    expect(r.stderr).toBe(
      "netmon validate: unknown option '--colour'\n(run 'netmon validate --help' for usage)\n",
    );
  });
});
