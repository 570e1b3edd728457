// One rendering of the exposition in one variant (format, gzip or not): produced once, read by the
// responses of one or more scrapes, each at its own pace. What it holds is bounded whatever its readers
// do: a shared rendering keeps its whole output (so that a scrape can still join it from the first byte)
// up to SHARED_MAX_BYTES; past that, and for a private rendering from the start, it keeps only what its
// slowest reader has not sent yet, and stops producing while that is AHEAD_BYTES or more.
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { constants, createGzip } from 'node:zlib';
import { CHUNK_CHARS, type Exposition, type Format } from './exposition.js';
import type { SeriesFamily } from './families.js';

/** Most output a shared rendering keeps whole; a larger one serves only the readers it already has. */
export const SHARED_MAX_BYTES = 8 << 20;
/** Most output a rendering that is not kept whole holds beyond what its slowest reader has sent. */
export const AHEAD_BYTES = 1 << 20;
/**
 * Longest the producer runs before letting the event loop take a turn. A fast local socket completes
 * writes synchronously, so without this a scrape would hold the loop (and the pipeline) for its whole
 * duration.
 */
const SLICE_MS = 5;

export interface Variant {
  format: Format;
  gzip: boolean;
}

export const variantKey = (v: Variant): string => `${v.format}${v.gzip ? '+gzip' : ''}`;

/**
 * Bytes of a pooled buffer. A chunk is CHUNK_CHARS UTF-16 units and the rest of the series that filled it
 * (each unit at most 3 UTF-8 bytes): it fits even if most of it is multi-byte.
 */
const BUFFER_BYTES = 4 * CHUNK_CHARS;
/** Free buffers kept for the next chunks: enough for a rendering in flight and gzip's input. */
const POOL_MAX = 16;

/**
 * Buffers the chunks are encoded into, reused once the socket (or zlib) is done with them. A scrape of
 * 10k label sets is 15 MiB of text: allocating it afresh for every scrape cost twice the CPU of rendering
 * it (allocation, page faults, and the garbage collections that external memory brings on).
 */
const pool: Buffer[] = [];
const takeBuffer = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(BUFFER_BYTES);
const giveBuffer = (b: Buffer): void => {
  if (pool.length < POOL_MAX) pool.push(b);
};

/**
 * `text` as UTF-8 in a pooled buffer (`backing`), or in a buffer of its own when it is outsized (one huge
 * label value). Written with `write`, never `Buffer.from`: on the concatenated strings the renderers build,
 * Buffer.from is about 7 times slower.
 */
function encode(text: string): { chunk: Buffer; backing?: Buffer } {
  if (text.length * 3 > BUFFER_BYTES) {
    const own = Buffer.allocUnsafeSlow(text.length * 3);
    return { chunk: own.subarray(0, own.write(text)) };
  }
  const backing = takeBuffer();
  return { chunk: backing.subarray(0, backing.write(text)), backing };
}

/** A pooled chunk's buffer, and the writes of it not yet done: it goes back once none is left and it was trimmed. */
interface Lease {
  backing: Buffer;
  writes: number;
  trimmed: boolean;
}

/** A response reading a rendering: the index of the next chunk it sends. */
export interface Reader {
  next: number;
}

/** Every waiter woken at once. */
class Wakeup {
  private waiters: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export type RenderingState = 'producing' | 'done' | 'failed' | 'abandoned';

export class Rendering {
  state: RenderingState = 'producing';
  error?: unknown;
  /** When production ended (ms since the epoch). */
  finishedAt = 0;
  /** Output bytes so far: compressed with gzip. */
  size = 0;
  /** Bytes of text rendered (before compression). */
  textBytes = 0;
  readonly readers = new Set<Reader>();
  /** Kept whole (every chunk from the first), so a scrape may still join from the start. */
  private keepAll: boolean;
  private readonly chunks: Buffer[] = [];
  /** The pooled buffer behind each chunk that has one. */
  private readonly leases = new Map<Buffer, Lease>();
  /** Index of chunks[0] since the first chunk: chunks before it every reader has sent. */
  private first = 0;
  private held = 0;
  private readonly produced = new Wakeup();
  private readonly consumed = new Wakeup();

  /**
   * `marks`: every table's update count when it began (what a reader sent whole has shown); `version`:
   * the tables' state then, compared with theirs when a scrape would join. `shared`: kept whole for
   * scrapes that may join; otherwise it serves the reader it is made for.
   */
  constructor(
    readonly variant: Variant,
    readonly marks: readonly [SeriesFamily, number][],
    readonly version: number,
    readonly shared: boolean,
  ) {
    this.keepAll = shared;
  }

  /** Index after the last chunk produced. */
  get end(): number {
    return this.first + this.chunks.length;
  }

  /** Whether a scrape may start reading it from the beginning. */
  get whole(): boolean {
    return this.keepAll;
  }

  /** A new reader, from the first chunk; only while the rendering is kept whole (or has no chunk yet). */
  join(): Reader {
    if (this.first > 0) throw new Error('prometheus exporter: joined a rendering past its start');
    const reader = { next: 0 };
    this.readers.add(reader);
    return reader;
  }

  /**
   * Chunk `i` (`reader.next` until `end`), to be written; `written(chunk)` once the write is done (its
   * callback), so that its buffer can be reused.
   */
  chunk(i: number): Buffer {
    const chunk = this.chunks[i - this.first];
    const lease = this.leases.get(chunk);
    if (lease) lease.writes++;
    return chunk;
  }

  written(chunk: Buffer): void {
    const lease = this.leases.get(chunk);
    if (!lease) return;
    lease.writes--;
    this.release(chunk, lease);
  }

  private release(chunk: Buffer, lease: Lease): void {
    if (!lease.trimmed || lease.writes > 0) return;
    this.leases.delete(chunk);
    giveBuffer(lease.backing);
  }

  /** A reader moved on (or left): chunks every reader has sent may go, and the producer may go on. */
  took(): void {
    this.trim();
    this.consumed.notify();
  }

  leave(reader: Reader): void {
    this.readers.delete(reader);
    this.took();
  }

  /** Resolves on the next chunk, the end, or `wake()`. */
  changed(): Promise<void> {
    return this.produced.wait();
  }

  /** Wakes every reader waiting in `changed()`, e.g. because its response closed. */
  wake(): void {
    this.produced.notify();
  }

  /**
   * Runs `renderers` (which write to `out` and yield when it is full) to the end, compressing with gzip
   * when the variant says so, in slices that leave the event loop turns. Stops early, abandoned, when
   * no reader is left or `cancelled()` turns true (the endpoint stops); fails when rendering throws.
   */
  async produce(out: Exposition, renderers: Generator<void>, cancelled: () => boolean): Promise<void> {
    // Level 1: repetitive label text still compresses ~10×, at a fraction of the default's CPU. zlib runs
    // on the thread pool, so compressing never blocks the pipeline.
    const z = this.variant.gzip
      ? createGzip({ level: constants.Z_BEST_SPEED, chunkSize: 1 << 16 })
      : undefined;
    z?.on('data', (c: Buffer) => this.push(c));
    const ended = z ? once(z, 'end') : undefined;
    // Awaited only on the way to the end; a zlib failure before then is handled where it surfaces.
    ended?.catch(() => undefined);
    try {
      let slice = performance.now();
      let rendered = false;
      while (!rendered) {
        if (this.readers.size === 0 || cancelled()) return this.abandon();
        if (performance.now() - slice > SLICE_MS) {
          await turn();
          slice = performance.now();
          continue;
        }
        while (!out.full) {
          if (renderers.next().done) {
            out.end();
            rendered = true;
            break;
          }
        }
        const text = out.take();
        if (text.length > 0) {
          const { chunk, backing } = encode(text);
          this.textBytes += chunk.length;
          if (!z) {
            // Kept whole, a chunk stays as long as the rendering: in a buffer of its own size, not a pooled one
            // four times as large (the SHARED_MAX_BYTES bound counts chunk bytes).
            if (this.keepAll && backing) {
              this.push(Buffer.from(chunk));
              giveBuffer(backing);
            } else this.push(chunk, backing);
          }
          // zlib calls back once it has taken the input in: the buffer may be reused then.
          else if (!z.write(chunk, () => backing && giveBuffer(backing))) await once(z, 'drain');
        }
        while (!this.keepAll && this.held >= AHEAD_BYTES && this.readers.size > 0 && !cancelled()) {
          await this.consumed.wait();
        }
      }
      if (z) {
        z.end();
        await ended;
      }
      this.state = 'done';
    } catch (err) {
      this.state = 'failed';
      this.error = err;
    } finally {
      // Closing the renderers releases their table cursors.
      renderers.return(undefined);
      if (this.state !== 'done') z?.destroy();
      this.finishedAt = Date.now();
      this.produced.notify();
    }
  }

  /** Production failed before it began (collecting the self-metrics). */
  fail(err: unknown): void {
    this.state = 'failed';
    this.error = err;
    this.finishedAt = Date.now();
    this.produced.notify();
  }

  private abandon(): void {
    this.state = 'abandoned';
  }

  private push(chunk: Buffer, backing?: Buffer): void {
    this.chunks.push(chunk);
    if (backing) this.leases.set(chunk, { backing, writes: 0, trimmed: false });
    this.held += chunk.length;
    this.size += chunk.length;
    if (this.keepAll && this.size > SHARED_MAX_BYTES) {
      this.keepAll = false;
      this.trim();
    }
    this.produced.notify();
  }

  /** Drops chunks every reader has sent, unless the rendering is kept whole. */
  private trim(): void {
    if (this.keepAll) return;
    let min = this.end;
    for (const r of this.readers) if (r.next < min) min = r.next;
    let drop = 0;
    while (this.first + drop < min) {
      const chunk = this.chunks[drop++];
      this.held -= chunk.length;
      const lease = this.leases.get(chunk);
      if (lease) {
        lease.trimmed = true;
        this.release(chunk, lease);
      }
    }
    if (drop > 0) {
      this.chunks.splice(0, drop);
      this.first += drop;
    }
  }
}
