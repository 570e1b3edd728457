import type { Command } from 'commander';
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
