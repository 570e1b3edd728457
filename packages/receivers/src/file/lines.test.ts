import { appendFile, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LineReader } from './lines.js';

interface Line {
  text: string;
  tooLong: boolean;
  start: number;
  end: number;
}

/** Every line of the file at `path` through a LineReader with the given chunk size, till the end. */
async function readAll(path: string, max: number, chunk: number, from = 0): Promise<Line[]> {
  const handle = await open(path, 'r');
  try {
    const reader = new LineReader(handle, from, max, chunk);
    const out: Line[] = [];
    const take = () =>
      out.push({ text: reader.text, tooLong: reader.tooLong, start: reader.start, end: reader.end });
    for (;;) {
      while (reader.next()) take();
      if (!(await reader.fill())) break;
    }
    if (reader.finish()) take();
    return out;
  } finally {
    await handle.close();
  }
}

/** The same lines made the obvious way, from the whole text in memory. */
function expected(bytes: Buffer, max: number): Line[] {
  const out: Line[] = [];
  let start = 0;
  while (start < bytes.length) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl < 0 ? bytes.length : nl + 1;
    let body = bytes.subarray(start, nl < 0 ? bytes.length : nl);
    if (body.length > 0 && body[body.length - 1] === 0x0d) body = body.subarray(0, body.length - 1);
    const tooLong = body.length > max;
    out.push({ text: tooLong ? '' : body.toString('utf8'), tooLong, start, end });
    start = end;
  }
  return out;
}

describe('LineReader', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-lines-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('splits like a whole-text split for every chunk size, at and around the limit, \\n and \\r\\n', async () => {
    const max = 8;
    const lines = [
      '',
      'a',
      'abcdefgh',
      'abcdefghi',
      'abcdefg\r',
      'abcdefgh\r',
      'x'.repeat(30),
      'é€😀',
      '\r',
      'tail',
    ];
    const text = `${lines.join('\n')}\n${lines.join('\r\n')}`; // the last line has no line ending
    const path = join(dir, 'lines.txt');
    await writeFile(path, text);
    const want = expected(Buffer.from(text), max);
    expect(want.filter((l) => l.tooLong).length).toBe(7);
    for (let chunk = 1; chunk <= 40; chunk++) {
      expect(await readAll(path, max, chunk), `chunk ${chunk}`).toEqual(want);
    }
  });

  it('starts at a given offset and reports offsets of the file', async () => {
    const path = join(dir, 'offset.txt');
    await writeFile(path, 'one\ntwo\nthree\n');
    expect(await readAll(path, 100, 3, 4)).toEqual([
      { text: 'two', tooLong: false, start: 4, end: 8 },
      { text: 'three', tooLong: false, start: 8, end: 14 },
    ]);
  });

  it('finds bytes appended after it reached the end, and the rest of a line it was in the middle of', async () => {
    const path = join(dir, 'growing.txt');
    await writeFile(path, 'one\ntw');
    const handle = await open(path, 'r');
    try {
      const reader = new LineReader(handle, 0, 100, 64);
      expect(await reader.fill()).toBe(true);
      expect(reader.next()).toBe(true);
      expect(reader.text).toBe('one');
      expect(reader.next()).toBe(false);
      expect(await reader.fill()).toBe(false);
      expect(reader.offset).toBe(4);
      await appendFile(path, 'o\nthree\n');
      expect(await reader.fill()).toBe(true);
      expect(reader.next()).toBe(true);
      expect([reader.text, reader.start, reader.end]).toEqual(['two', 4, 8]);
      expect(reader.next()).toBe(true);
      expect(reader.text).toBe('three');
      expect(reader.next()).toBe(false);
      expect(await reader.fill()).toBe(false);
      expect(reader.finish()).toBe(false);
    } finally {
      await handle.close();
    }
  });
});
