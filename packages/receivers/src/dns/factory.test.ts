import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroup2Mount } from '../ebpf/kernel.js';
import { CAPTURE_MAX } from './config.js';
import { dnsReceiverFactory } from './factory.js';
import { DnsReceiver } from './receiver.js';

const parse = (config: Record<string, unknown>) => dnsReceiverFactory.config.safeParse(config);
const validate = async (config: Record<string, unknown>) =>
  dnsReceiverFactory.validate?.(dnsReceiverFactory.config.parse(config), { configDir: '/' });
/** The config's errors as `key: message`, or the parsed value. */
const errors = (config: Record<string, unknown>) => {
  const r = parse(config);
  return r.success ? r.data : r.error.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
};

const KIB = 1024;
const MIB = 1024 * KIB;

describe('dns factory', () => {
  it('is the dns receiver of the dns signal, alpha, taking a dns_cache when one is configured', () => {
    expect(dnsReceiverFactory).toMatchObject({
      kind: 'receiver',
      type: 'dns',
      stability: 'alpha',
      signals: ['dns'],
      optionalExtensions: ['dns_cache'],
    });
  });

  it('defaults: the cgroup2 root, a read every second, a 1 MiB ring, 1500 bytes a message, 5 s for an answer, required', () => {
    expect(dnsReceiverFactory.config.parse({})).toEqual({
      read_interval: 1000,
      ring_buffer_size: MIB,
      capture_bytes: 1500,
      optional: false,
      query_timeout: 5000,
    });
  });

  it('creates the receiver without touching the kernel (the addon is loaded at start)', async () => {
    const receiver = await dnsReceiverFactory.create(
      testSettings('receiver', 'dns', { signals: ['dns'] }),
      dnsReceiverFactory.config.parse({}),
      new CollectingSink(),
    );
    expect(receiver).toBeInstanceOf(DnsReceiver);
    await receiver.shutdown?.();
  });
});

describe('dns factory: ring_buffer_size', () => {
  const why = (text: string) =>
    `ring_buffer_size: "${text}" is not a ring buffer size: it must be a power of two from 4KiB to 256MiB (the kernel maps it in whole pages), e.g. 1MiB`;

  it('takes bytes, or KiB and MiB, a power of two from 4KiB to 256MiB', () => {
    const size = (v: unknown) => dnsReceiverFactory.config.parse({ ring_buffer_size: v }).ring_buffer_size;
    expect([4096, '4KiB', '512KiB', '1MiB', ' 2 MiB ', '65536', '256MiB', 256 * MIB].map(size)).toEqual([
      4 * KIB,
      4 * KIB,
      512 * KIB,
      MIB,
      2 * MIB,
      64 * KIB,
      256 * MIB,
      256 * MIB,
    ]);
  });

  it('refuses a size that is not a power of two', () => {
    expect(errors({ ring_buffer_size: 3000 })).toEqual([why('3000')]);
    expect(errors({ ring_buffer_size: '768KiB' })).toEqual([why('768KiB')]);
  });

  it('refuses one too small or too big for the kernel to map', () => {
    expect(errors({ ring_buffer_size: '2KiB' })).toEqual([why('2KiB')]);
    expect(errors({ ring_buffer_size: 2048 })).toEqual([why('2048')]);
    expect(errors({ ring_buffer_size: '512MiB' })).toEqual([why('512MiB')]);
    expect(errors({ ring_buffer_size: 0 })).toEqual([why('0')]);
    expect(errors({ ring_buffer_size: -4096 })).toEqual([why('-4096')]);
  });

  it('refuses text that is no size, and other types, saying what a size looks like', () => {
    for (const text of ['lots', '1.5MiB', '1MB', '1 GiB', '4k', '']) {
      expect(errors({ ring_buffer_size: text })).toEqual([why(text)]);
    }
    expect(errors({ ring_buffer_size: true })).toEqual([
      'ring_buffer_size: expected a size such as 1MiB, 512KiB or 65536',
    ]);
  });
});

describe('dns factory: other keys', () => {
  it(`capture_bytes: a whole number of bytes from 12 (a DNS header) to ${CAPTURE_MAX}`, () => {
    const bytes = (v: number) => dnsReceiverFactory.config.parse({ capture_bytes: v }).capture_bytes;
    expect([12, 512, CAPTURE_MAX].map(bytes)).toEqual([12, 512, 4096]);
    expect(errors({ capture_bytes: 11 })).toEqual(['capture_bytes: Too small: expected number to be >=12']);
    expect(errors({ capture_bytes: CAPTURE_MAX + 1 })).toEqual([
      'capture_bytes: Too big: expected number to be <=4096',
    ]);
    expect(errors({ capture_bytes: 100.5 })).toEqual([
      'capture_bytes: Invalid input: expected int, received number',
    ]);
  });

  it('read_interval at least 50ms, query_timeout at least 100ms', () => {
    expect(dnsReceiverFactory.config.parse({ read_interval: '50ms', query_timeout: '2m' })).toMatchObject({
      read_interval: 50,
      query_timeout: 120_000,
    });
    expect(errors({ read_interval: '10ms', query_timeout: '50ms' })).toEqual([
      'read_interval: "10ms" is too short; the minimum is 50ms',
      'query_timeout: "50ms" is too short; the minimum is 100ms',
    ]);
  });

  it('refuses unknown keys (a misspelt one would be silently ignored otherwise)', () => {
    expect(errors({ ring_size: '1MiB' })).toEqual([expect.stringMatching(/ring_size/)]);
  });
});

describe('dns factory: cgroup_path checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netmon-dns-factory-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const mount = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));

  it('unset or empty: nothing to check (the start finds the cgroup2 root)', async () => {
    expect(await validate({})).toEqual([]);
    expect(await validate({ cgroup_path: '' })).toEqual([]);
  });

  it('a path that does not exist', async () => {
    const missing = join(dir, 'missing');
    expect(await validate({ cgroup_path: missing })).toEqual([
      {
        key: 'cgroup_path',
        message: `${missing} does not exist: give a cgroup2 directory such as /sys/fs/cgroup or /sys/fs/cgroup/kubepods.slice`,
      },
    ]);
  });

  it('a directory that exists but is not on cgroup2', async () => {
    expect(await validate({ cgroup_path: dir })).toEqual([
      {
        key: 'cgroup_path',
        message: `${dir} is not on a cgroup2 file system (eBPF programs attach to cgroup2 directories only)`,
      },
    ]);
  });

  it.runIf(mount !== undefined)('the cgroup2 mount itself passes', async () => {
    expect(await validate({ cgroup_path: mount })).toEqual([]);
  });
});
