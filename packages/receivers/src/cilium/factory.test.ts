import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { BPF_FS_MAGIC } from './bpffs.js';
import { ciliumReceiverFactory } from './factory.js';
import { CiliumReceiver } from './receiver.js';

/** The config's errors as `key: message`, or the parsed value. */
const errors = (config: Record<string, unknown>) => {
  const r = ciliumReceiverFactory.config.safeParse(config);
  return r.success ? r.data : r.error.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
};

const create = (config: Record<string, unknown> = {}) =>
  ciliumReceiverFactory.create(
    testSettings('receiver', 'cilium'),
    ciliumReceiverFactory.config.parse(config),
    new CollectingSink(),
  );

describe('cilium factory', () => {
  it('is the cilium receiver of the flows signal, alpha, with its self-metrics declared', () => {
    expect(ciliumReceiverFactory).toMatchObject({
      kind: 'receiver',
      type: 'cilium',
      stability: 'alpha',
      signals: ['flows'],
    });
    expect(Object.values(ciliumReceiverFactory.metrics ?? {}).map((m) => m.name)).toEqual([
      'netmon_cilium_reads',
      'netmon_cilium_read_failures',
      'netmon_cilium_truncated_reads',
      'netmon_cilium_entries',
      'netmon_cilium_read_duration',
    ]);
  });

  it("defaults: Cilium's pin directory and map names, a read every 5 s, layout and clock detected, the maps' own size", () => {
    expect(errors({})).toEqual({
      maps_dir: '/sys/fs/bpf/tc/globals',
      read_interval: 5000,
      map_names: {
        tcp4: 'cilium_ct4_global',
        any4: 'cilium_ct_any4_global',
        tcp6: 'cilium_ct6_global',
        any6: 'cilium_ct_any6_global',
      },
      value_layout: 'auto',
      clock_source: 'auto',
      require_counters: false,
    });
  });

  it('takes a map left out (""), an explicit layout and clock, a bound on entries', () => {
    expect(
      errors({
        map_names: { tcp6: '', any6: '' },
        value_layout: 'total',
        clock_source: 'jiffies',
        max_entries: 1 << 20,
        read_interval: '100ms',
      }),
    ).toMatchObject({
      map_names: { tcp4: 'cilium_ct4_global', any4: 'cilium_ct_any4_global', tcp6: '', any6: '' },
      value_layout: 'total',
      clock_source: 'jiffies',
      max_entries: 1 << 20,
      read_interval: 100,
    });
  });

  it('refuses, saying what it expected: a map name with a path in it, an unknown map or key, an unknown layout or clock', () => {
    expect(errors({ map_names: { tcp4: '../cilium_ct4_global' } })).toEqual([
      'map_names::tcp4: expected a map file name (letters, digits, _ . -), or "" to leave it out',
    ]);
    expect(errors({ map_names: { tcp5: 'x' } })).toEqual(['map_names: Unrecognized key: "tcp5"']);
    expect(errors({ maps: {} })).toEqual([': Unrecognized key: "maps"']);
    expect(errors({ value_layout: 'v2' })).toEqual([
      'value_layout: Invalid option: expected one of "auto"|"split"|"total"',
    ]);
    expect(errors({ clock_source: 'tsc' })).toEqual([
      'clock_source: Invalid option: expected one of "auto"|"ktime"|"jiffies"',
    ]);
  });

  it('refuses an empty maps_dir, a read_interval under 100 ms, max_entries outside 1..2^24 or not whole', () => {
    expect(errors({ maps_dir: '' })).toEqual(['maps_dir: Too small: expected string to have >=1 characters']);
    expect(errors({ read_interval: '50ms' })).toEqual([
      'read_interval: "50ms" is too short; the minimum is 100ms',
    ]);
    expect(errors({ max_entries: 0 })).toEqual(['max_entries: Too small: expected number to be >=1']);
    expect(errors({ max_entries: 2 ** 24 + 1 })).toEqual([
      'max_entries: Too big: expected number to be <=16777216',
    ]);
    expect(errors({ max_entries: 1.5 })).toEqual([
      'max_entries: Invalid input: expected int, received number',
    ]);
  });

  it('creates the receiver without touching the node (the addon is loaded with the receiver, used at start)', async () => {
    const receiver = await create();
    expect(receiver).toBeInstanceOf(CiliumReceiver);
    await receiver.shutdown?.();
  });
});

describe('cilium factory: the real node access at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netmon-cilium-factory-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a maps_dir that does not exist fails the start', async () => {
    const missing = join(dir, 'missing');
    const receiver = await create({ maps_dir: missing });
    await expect(receiver.start?.()).rejects.toThrow(`cilium receiver: ${missing} does not exist:`);
    await receiver.shutdown?.();
  });

  it('files by the maps’ names in a directory that is no bpffs: the start says so (with its type), not the kernel’s "Permission denied"', async () => {
    // The host's /sys/fs/bpf not mounted into the pod: a plain directory (the temp dir's file system).
    const fake = join(dir, 'not-a-bpffs');
    rmSync(fake, { recursive: true, force: true });
    mkdirSync(fake);
    writeFileSync(join(fake, 'cilium_ct4_global'), 'x');
    writeFileSync(join(fake, 'cilium_ct6_global'), 'x');
    const type = statfsSync(fake).type >>> 0;
    expect(type).not.toBe(BPF_FS_MAGIC);
    const receiver = await create({ maps_dir: fake });
    const err = await Promise.resolve(receiver.start?.()).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(
      new RegExp(
        `^cilium receiver: ${fake} is not a bpf file system \\(type 0x${type.toString(16)}(, [a-z0-9]+)?\\): only a bpffs holds pinned maps — mount the host's /sys/fs/bpf into the pod \\(hostPath\\)`,
      ),
    );
    expect(err?.message).not.toMatch(/Permission denied|Operation not permitted/);
    await receiver.shutdown?.();
  });
});

describe('cilium factory: validate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netmon-cilium-validate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const validate = (config: Record<string, unknown>, tentative?: boolean) =>
    ciliumReceiverFactory.validate?.(ciliumReceiverFactory.config.parse(config), {
      configDir: dir,
      tentative,
    });

  it('a maps_dir that exists but is no bpf file system is a config error naming its type and what to mount', async () => {
    const type = statfsSync(dir).type >>> 0;
    expect(await validate({ maps_dir: dir })).toEqual([
      {
        key: 'maps_dir',
        message: expect.stringMatching(
          new RegExp(
            `^${dir} is not a bpf file system \\(type 0x${type.toString(16)}(, [a-z0-9]+)?\\): only a bpffs holds pinned maps — mount the host's /sys/fs/bpf into the pod \\(hostPath\\) and point maps_dir at Cilium's directory in it \\(tc/globals\\)$`,
          ),
        ),
      },
    ]);
  });

  it('says nothing where it cannot be sure: under auto (tentative: another node may be Cilium’s), or a maps_dir not there (the start says it)', async () => {
    expect(await validate({ maps_dir: dir }, true)).toEqual([]);
    expect(await validate({ maps_dir: join(dir, 'missing') })).toEqual([]);
  });
});
