import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ebpfReceiverFactory } from './factory.js';
import { cgroup2Mount } from './kernel.js';

const validate = async (config: Record<string, unknown>) =>
  ebpfReceiverFactory.validate?.(ebpfReceiverFactory.config.parse(config), { configDir: '/' });

describe('ebpf factory: cgroup_path checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netmon-ebpf-factory-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const mount = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));

  it('unset or empty: nothing to check (the start finds the cgroup2 mount)', async () => {
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

  it("a directory that exists but is not on cgroup2 (a hybrid host's /sys/fs/cgroup is a tmpfs), naming where cgroup2 is", async () => {
    const where = mount
      ? `this node's cgroup2 hierarchy is mounted at ${mount}`
      : 'cgroup2 is /sys/fs/cgroup on a unified host and /sys/fs/cgroup/unified on a hybrid one';
    expect(await validate({ cgroup_path: dir })).toEqual([
      {
        key: 'cgroup_path',
        message: `${dir} is not on a cgroup2 file system (eBPF programs attach to cgroup2 directories only): ${where}`,
      },
    ]);
  });

  it.runIf(mount !== undefined)('the cgroup2 mount itself passes', async () => {
    expect(await validate({ cgroup_path: mount })).toEqual([]);
  });
});
