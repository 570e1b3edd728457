import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readState, StateWriter } from './state.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'netmon-devzero-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const doc = (pending: unknown[] = []) => JSON.stringify({ version: 1, saved_at: '', pending, ip2domain: [] });

describe('devzero state file', () => {
  it('is written whole into a directory it creates, owner-only, with no .tmp left', async () => {
    const file = join(dir, 'queue', 'devzero.queue.json');
    let content = doc();
    const errors: unknown[] = [];
    const writer = new StateWriter(
      file,
      () => content,
      (err) => errors.push(err),
    );
    await writer.save();
    content = doc([{ node_name: 'n1', items: [], dns_lookups: [] }]);
    await writer.save();
    expect(JSON.parse(await readFile(file, 'utf8')).pending).toEqual([
      { node_name: 'n1', items: [], dns_lookups: [] },
    ]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'queue'))).toEqual(['devzero.queue.json']);
    expect({ writes: writer.writes, failures: writer.failures, errors }).toEqual({
      writes: 2,
      failures: 0,
      errors: [],
    });
    expect((await readState(file)).state?.pending[0]).toEqual({
      node_name: 'n1',
      items: [],
      dns_lookups: [],
      domains: {},
    });
  });

  it('counts a failed write and says why', async () => {
    // A file where the directory should be.
    await writeFile(join(dir, 'queue'), 'not a directory');
    const errors: unknown[] = [];
    const writer = new StateWriter(join(dir, 'queue', 'devzero.queue.json'), doc, (err) => errors.push(err));
    await writer.save();
    expect(writer.writes).toBe(0);
    expect(writer.failures).toBe(1);
    expect(writer.lastError).toMatch(/EEXIST|ENOTDIR/);
    expect(errors).toHaveLength(1);
  });

  it('sets a damaged file aside, and says so truthfully when it cannot', async () => {
    const file = join(dir, 'devzero.queue.json');
    await writeFile(file, '{"version":1,"pending":[{"items":"nope"}]}');
    expect(await readState(file)).toEqual({
      problem: `${file} is damaged (a pending request is malformed); set aside as ${file}.corrupt`,
    });
    expect(await readdir(dir)).toEqual(['devzero.queue.json.corrupt']);

    // The *.corrupt name is taken by a non-empty directory: the file stays where it is; not blocked, as no
    // later run could read it back either.
    await rm(`${file}.corrupt`);
    await writeFile(file, 'not json');
    await mkdir(join(`${file}.corrupt`, 'taken'), { recursive: true });
    const result = await readState(file);
    expect(result.blocked).toBeUndefined();
    expect(result.problem).toMatch(
      new RegExp(
        `^${file.replace(/[.]/g, '\\.')} is damaged \\(.+\\), nor set it aside \\(.+\\); starting empty$`,
      ),
    );
    expect(await readFile(file, 'utf8')).toBe('not json');
  });
});
