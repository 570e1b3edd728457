// The addon's pinned-map reader against maps bpftool creates and fills on a bpffs of the test's own, in
// Cilium's conntrack layouts (14- and 38-byte keys, 56-byte values): every entry read back byte for byte,
// across several batches; sizes checked before anything is read; a missing pin, an empty map and a
// bounded read each say so. Root only: skipped locally without it, a failure in CI.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readPinnedMap } from '@netmon/native';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privileged } from '../harness/netns.js';

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

/** Entry i of a test map: the key and value bytes derive from i, so each can be checked. */
function entry(i: number, keySize: number, valueSize: number): { key: Uint8Array; value: Uint8Array } {
  const key = new Uint8Array(keySize);
  const value = new Uint8Array(valueSize);
  new DataView(key.buffer).setUint32(0, i);
  key[keySize - 1] = i % 5; // a flags byte, as Cilium's tuples end with
  new DataView(value.buffer).setBigUint64(16, BigInt(i * 3), true);
  new DataView(value.buffer).setBigUint64(24, BigInt(i * 1500), true);
  return { key, value };
}

describe.runIf(privileged())('readPinnedMap on maps pinned by bpftool', () => {
  let fs: string;
  let work: string;

  beforeAll(() => {
    fs = mkdtempSync(path.join(tmpdir(), 'netmon-bpffs-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', fs]);
    work = mkdtempSync(path.join(tmpdir(), 'netmon-maps-'));
  });

  afterAll(() => {
    // Unmounting the test's bpffs frees every map pinned on it (nothing else holds them).
    if (fs) {
      execFileSync('umount', [fs]);
      rmSync(fs, { recursive: true, force: true });
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * Creates an LRU hash map pinned at `name` and fills it with entries 0..n-1 in one bpftool batch. Twice
   * the room: an LRU map starts evicting before it is full (its free lists are per CPU).
   */
  function pinned(name: string, keySize: number, n: number, entries = 2 * n + 16): string {
    const pin = path.join(fs, name);
    execFileSync('bpftool', [
      'map',
      'create',
      pin,
      'type',
      'lru_hash',
      'key',
      String(keySize),
      'value',
      '56',
      'entries',
      String(entries),
      'name',
      name.slice(0, 15),
    ]);
    if (n > 0) {
      const lines = [];
      for (let i = 0; i < n; i++) {
        const { key, value } = entry(i, keySize, 56);
        lines.push(`map update pinned ${pin} key hex ${hex(key)} value hex ${hex(value)}`);
      }
      const batch = path.join(work, `${name}.batch`);
      writeFileSync(batch, `${lines.join('\n')}\n`);
      execFileSync('bpftool', ['batch', 'file', batch]);
    }
    return pin;
  }

  it('reads every entry of a map larger than one batch, byte for byte, with the map info', async () => {
    const n = 10_000;
    const pin = pinned('ct4', 14, n);
    const r = await readPinnedMap({ path: pin, keySize: 14, valueSize: 56 });
    expect(r).toMatchObject({ count: n, truncated: false, batched: true });
    expect(r.info).toEqual({ type: 9, keySize: 14, valueSize: 56, maxEntries: 2 * n + 16, name: 'ct4' });
    expect(r.keys.length).toBe(14 * n);
    expect(r.values.length).toBe(56 * n);
    const seen = new Set<number>();
    for (let k = 0; k < n; k++) {
      const i = new DataView(r.keys.buffer, r.keys.byteOffset + 14 * k).getUint32(0);
      const want = entry(i, 14, 56);
      expect(hex(r.keys.subarray(14 * k, 14 * k + 14))).toBe(hex(want.key));
      expect(hex(r.values.subarray(56 * k, 56 * k + 56))).toBe(hex(want.value));
      seen.add(i);
    }
    expect(seen.size).toBe(n);
  });

  it('IPv6-sized keys (38 bytes), an empty map, and a read bounded by maxEntries', async () => {
    const v6 = pinned('ct6', 38, 300);
    const r = await readPinnedMap({ path: v6, keySize: 38, valueSize: 56 });
    expect(r.count).toBe(300);
    const empty = pinned('any4', 14, 0);
    expect(await readPinnedMap({ path: empty, keySize: 14, valueSize: 56 })).toMatchObject({
      count: 0,
      truncated: false,
    });
    const bounded = await readPinnedMap({ path: v6, keySize: 38, valueSize: 56, maxEntries: 100 });
    expect(bounded).toMatchObject({ count: 100, truncated: true });
    expect(bounded.keys.length).toBe(38 * 100);
  });

  it('refuses a map of other sizes before reading it, and says what it found; a missing pin is ENOENT', async () => {
    const v4 = pinned('wrong', 14, 3);
    await expect(readPinnedMap({ path: v4, keySize: 38, valueSize: 56 })).rejects.toMatchObject({
      code: 'ESIZE',
      message: `${v4} has key/value sizes 14/56, not the 38/56 this layout reads`,
      info: { keySize: 14, valueSize: 56, type: 9 },
    });
    await expect(
      readPinnedMap({ path: path.join(fs, 'cilium_ct4_global'), keySize: 14, valueSize: 56 }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    // A file that is not a pin at all.
    const plain = path.join(work, 'not-a-map');
    writeFileSync(plain, 'x');
    await expect(readPinnedMap({ path: plain, keySize: 14, valueSize: 56 })).rejects.toHaveProperty('code');
  });
});
