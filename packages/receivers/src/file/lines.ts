// Our own line splitter rather than node:readline: readline keeps a line in memory however long it is (a
// line of 512 MiB throws RangeError, uncaught, from inside the stream), and it cannot say at which byte
// offset a line starts, which the checkpoint needs. This one reads fixed chunks at explicit positions,
// holds at most `maxBytes` of an unfinished line, and drops the bytes of a longer line as they are read.
import type { FileHandle } from 'node:fs/promises';

export const READ_CHUNK = 64 * 1024;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits the bytes of a file into lines ending in "\n" (a "\r" before it belongs to the line ending, as
 * JSON Lines allows "\r\n"). `next` is synchronous and returns the lines of the chunk in hand; `fill`
 * reads the next chunk. Reads are positional, so a reader sees bytes appended to the file after it
 * started, and several rounds can share one open handle.
 */
export class LineReader {
  /** The line `next` or `finish` returned, without its line ending; '' when it was too long. */
  text = '';
  /** That line was longer than `maxBytes`: its bytes were skipped, `text` is empty. */
  tooLong = false;
  /** Byte offsets of that line in the file: where it starts, and where the line after it starts. */
  start = 0;
  end = 0;

  private readonly chunk: Buffer;
  private chunkLen = 0;
  /** File offset of chunk[0]. */
  private chunkPos: number;
  /** Next byte of the chunk to look at. */
  private scan = 0;
  /** File offset where the line being assembled starts. */
  private lineStart: number;
  /** The part of that line found in earlier chunks; at most maxBytes + 1 (a "\r" may follow the line). */
  private carry: Buffer = Buffer.alloc(0);
  private carryLen = 0;
  /** The line being assembled is already too long: its bytes are dropped until its end. */
  private skipping = false;

  constructor(
    private readonly handle: FileHandle,
    position: number,
    private readonly maxBytes: number,
    chunkBytes = READ_CHUNK,
  ) {
    this.chunk = Buffer.allocUnsafe(chunkBytes);
    this.chunkPos = position;
    this.lineStart = position;
  }

  /** Where the first line not yet returned starts: everything before it has been returned. */
  get offset(): number {
    return this.lineStart;
  }

  /** The next complete line in the bytes read so far (in `text`, `start`, …); false when `fill` is due. */
  next(): boolean {
    if (this.scan >= this.chunkLen) return false;
    const nl = this.chunk.indexOf(LF, this.scan);
    if (nl < 0 || nl >= this.chunkLen) {
      this.hold(this.scan, this.chunkLen);
      this.scan = this.chunkLen;
      return false;
    }
    const from = this.scan;
    this.scan = nl + 1;
    this.take(from, nl, this.chunkPos + nl + 1);
    return true;
  }

  /** Reads the next chunk; false at the end of the file (for now: a later call may find appended bytes). */
  async fill(): Promise<boolean> {
    const position = this.chunkPos + this.chunkLen;
    const { bytesRead } = await this.handle.read(this.chunk, 0, this.chunk.length, position);
    this.chunkPos = position;
    this.chunkLen = bytesRead;
    this.scan = 0;
    return bytesRead > 0;
  }

  /** At the end of the file: the last line if it has no "\n" (true), as a line of its own. */
  finish(): boolean {
    if (this.carryLen === 0 && !this.skipping) return false;
    this.take(0, 0, this.chunkPos + this.chunkLen);
    return true;
  }

  /** Sets `text` etc. to the line made of the carry and chunk[from, to), which ends at file offset `end`. */
  private take(from: number, to: number, end: number): void {
    this.start = this.lineStart;
    this.end = end;
    this.lineStart = end;
    let len = this.carryLen + (to - from);
    if (!this.skipping && len > 0) {
      const last = to > from ? this.chunk[to - 1] : this.carry[this.carryLen - 1];
      if (last === CR) len--;
    }
    if (this.skipping || len > this.maxBytes) {
      this.tooLong = true;
      this.text = '';
    } else {
      this.tooLong = false;
      if (this.carryLen === 0) {
        this.text = this.chunk.toString('utf8', from, from + len);
      } else {
        this.append(from, to);
        this.text = this.carry.toString('utf8', 0, len);
      }
    }
    this.carryLen = 0;
    this.skipping = false;
  }

  /** Keeps chunk[from, to), the start of a line that continues in the next chunk, unless it is too long. */
  private hold(from: number, to: number): void {
    if (this.skipping) return;
    if (this.carryLen + (to - from) > this.maxBytes + 1) {
      this.skipping = true;
      this.carryLen = 0;
      // A long line seen once says little about the next ones: give the memory back.
      if (this.carry.length > READ_CHUNK) this.carry = Buffer.alloc(0);
      return;
    }
    this.append(from, to);
  }

  private append(from: number, to: number): void {
    const need = this.carryLen + (to - from);
    if (need > this.carry.length) {
      const grown = Buffer.allocUnsafe(
        Math.min(Math.max(need, 2 * this.carry.length, 4096), this.maxBytes + 1),
      );
      this.carry.copy(grown, 0, 0, this.carryLen);
      this.carry = grown;
    }
    this.chunk.copy(this.carry, this.carryLen, from, to);
    this.carryLen = need;
  }
}
