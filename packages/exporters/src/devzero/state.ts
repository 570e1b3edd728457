// The devzero exporter's state file: the requests not yet acknowledged (and the IP → domain cache), so an
// agent restarted during an outage still delivers every interval, once.
import { readRegularFile, setAside, writeFileAtomic } from '@netmon/core';
import type { Payload } from './requests.js';

export interface StateDocument {
  version: 1;
  saved_at: string;
  pending: Payload[];
  ip2domain: [string, string, number][];
}

export interface ReadResult {
  state?: StateDocument;
  /** What went wrong, for the log. */
  problem?: string;
  /**
   * The file exists, could not be read, and could not be set aside either: it must not be written this
   * run, or the intervals it may hold would be overwritten.
   */
  blocked?: boolean;
}

/**
 * Reads the state file: nothing when there is none. A damaged file is renamed `*.corrupt`, one that exists
 * but cannot be read (EIO, EACCES) `*.unreadable` — kept for a human, out of the way of the next write —
 * and reported; when even that rename fails, `blocked` says not to write the file.
 */
export async function readState(
  file: string,
  // Only a regular file: a FIFO put there would block the start forever.
  read: (file: string) => Promise<string> = (f) => readRegularFile(f, 'utf8'),
): Promise<ReadResult> {
  let text: string;
  try {
    text = await read(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    const why = `cannot read ${file} (${(err as Error).message})`;
    const aside = await setAside(file, 'unreadable');
    if ('error' in aside) {
      return {
        problem: `${why}, nor set it aside as ${file}.unreadable (${aside.error.message}): it is not written this run, so what it holds is not overwritten; unsent intervals are kept in memory only`,
        blocked: true,
      };
    }
    return { problem: `${why}; set aside as ${aside.movedTo}, starting empty` };
  }
  try {
    const doc = JSON.parse(text) as StateDocument;
    if (doc?.version !== 1 || !Array.isArray(doc.pending)) throw new Error('not a devzero state file');
    for (const p of doc.pending) {
      if (!Array.isArray(p?.items) || !Array.isArray(p.dns_lookups) || typeof p.node_name !== 'string') {
        throw new Error('a pending request is malformed');
      }
      p.domains ??= {};
    }
    if (!Array.isArray(doc.ip2domain)) doc.ip2domain = [];
    return { state: doc };
  } catch (err) {
    const why = `${file} is damaged (${(err as Error).message})`;
    const aside = await setAside(file, 'corrupt');
    // Not blocked, unlike an unreadable file: no later run could read a damaged one back either.
    if ('error' in aside)
      return { problem: `${why}, nor set it aside (${aside.error.message}); starting empty` };
    return { problem: `${why}; set aside as ${aside.movedTo}` };
  }
}

/**
 * Writes the state whenever asked, one write at a time, each with the content of the moment it starts:
 * requests made while a write runs coalesce into one more write after it. So the last write always
 * reflects the latest queue, and a request acknowledged during a write is gone from the file after the
 * next one (an acknowledged request is never resurrected by an older snapshot finishing late).
 */
export class StateWriter {
  private running?: Promise<void>;
  private again = false;
  /** Set when the file must not be written (see ReadResult.blocked): save() then does nothing. */
  blocked = false;
  writes = 0;
  failures = 0;
  lastError?: string;

  constructor(
    private readonly file: string,
    private readonly content: () => string,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Asks for a write; returns when the content as of now (or later) is on disk. */
  save(): Promise<void> {
    if (this.blocked) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Waits for the writes asked for so far. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      const text = this.content();
      try {
        await writeFileAtomic(this.file, text);
        this.writes++;
        this.lastError = undefined;
      } catch (err) {
        this.failures++;
        this.lastError = (err as Error).message;
        this.onError(err);
      }
    } while (this.again);
  }
}
