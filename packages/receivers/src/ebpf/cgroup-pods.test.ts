import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CgroupPods, podUidOfPath } from './cgroup-pods.js';
import { cgroup2Mount } from './kernel.js';

const findCgroup2Mount = () => cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));

// A hook in front of readdirSync, so a test can remove a directory just before the walk reads it (a
// cgroup that vanishes mid-walk) or make the read fail the way an unreadable directory does.
const hooks = vi.hoisted(() => ({ beforeReaddir: undefined as ((path: string) => void) | undefined }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readdirSync = ((path: string, options?: unknown) => {
    hooks.beforeReaddir?.(String(path));
    return fs.readdirSync(path, options as never);
  }) as typeof fs.readdirSync;
  return { ...fs, readdirSync, default: { ...fs, readdirSync } };
});

const UID_A = '0f6b2c1e-6a1d-4f1e-9a52-3c7f0c1d2e3a';
const UID_B = '7d2e9f30-1b4c-4e5d-8f6a-9b0c1d2e3f40';
const UID_C = 'c3a1b2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
const CID = 'a'.repeat(64);
const under = (uid: string) => uid.replaceAll('-', '_');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netmon-cgroup-pods-'));
});
afterEach(() => {
  hooks.beforeReaddir = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Makes the directories (plain ones stand in for cgroups) and returns path → id (its inode number). */
function tree(root: string, paths: string[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const p of paths) {
    mkdirSync(join(root, p), { recursive: true });
    let at = '';
    for (const part of p.split('/')) {
      at = at === '' ? part : `${at}/${part}`;
      ids.set(at, idOf(join(root, at)));
    }
  }
  return ids;
}

const idOf = (path: string) => Number(statSync(path, { bigint: true }).ino);

/** A clock the test moves. */
function clock(start = 10_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('podUidOfPath', () => {
  it.each([
    [`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under(UID_A)}.slice`, UID_A],
    [
      `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${under(UID_A)}.slice/cri-containerd-${CID}.scope`,
      UID_A,
    ],
    [`kubepods.slice/kubepods-pod${under(UID_B)}.slice/crio-conmon-${CID}.scope`, UID_B],
    [`/sys/fs/cgroup/kubepods.slice/kubepods-pod${under(UID_B)}.slice/docker-${CID}.scope`, UID_B],
    [
      `kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${under(UID_C)}.slice/cri-containerd-${CID}.scope`,
      UID_C,
    ],
    [`kubepods/burstable/pod${UID_A}/${CID}`, UID_A],
    [`kubepods/pod${UID_B}`, UID_B],
    [`/kubelet/kubepods/besteffort/pod${UID_C}/${CID}/nested`, UID_C],
    // A static pod's UID is a hash, not a UUID.
    ['kubepods/burstable/pod3f1e1b2d9c8a7f6e5d4c3b2a1f0e9d8c', '3f1e1b2d9c8a7f6e5d4c3b2a1f0e9d8c'],
  ])('%s → %s', (path, uid) => {
    expect(podUidOfPath(path)).toBe(uid);
  });

  it.each([
    'kubepods.slice',
    'kubepods.slice/kubepods-burstable.slice',
    'kubepods/besteffort',
    'system.slice/containerd.service',
    `system.slice/pod${UID_A}`,
    `system.slice/kubepods-pod${under(UID_A)}.slice`,
    `user.slice/kubepods/burstable/other/pod${UID_A}`,
    `kubepods/guaranteed/pod${UID_A}`,
    '/',
    '',
  ])('%s is no pod', (path) => {
    expect(podUidOfPath(path)).toBeUndefined();
  });
});

describe('CgroupPods on a fake tree', () => {
  it('maps every cgroup at or below a pod of the systemd driver to it, whatever the runtime', () => {
    const ids = tree(dir, [
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under(UID_A)}.slice/cri-containerd-${CID}.scope`,
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under(UID_A)}.slice/cri-containerd-pause.scope`,
      `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${under(UID_B)}.slice/crio-${CID}.scope`,
      `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${under(UID_B)}.slice/crio-conmon-${CID}.scope`,
      `kubepods.slice/kubepods-pod${under(UID_C)}.slice/docker-${CID}.scope/init.scope`,
      'system.slice/containerd.service',
      'user.slice/user-0.slice',
    ]);
    const pods = new CgroupPods(dir);
    const burstable = `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under(UID_A)}.slice`;
    expect(pods.podUid(ids.get(`${burstable}/cri-containerd-${CID}.scope`)!)).toBe(UID_A);
    expect(pods.podUid(ids.get(`${burstable}/cri-containerd-pause.scope`)!)).toBe(UID_A);
    expect(pods.podUid(ids.get(burstable)!)).toBe(UID_A);
    const besteffort = `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${under(UID_B)}.slice`;
    expect(pods.podUid(ids.get(`${besteffort}/crio-${CID}.scope`)!)).toBe(UID_B);
    expect(pods.podUid(ids.get(`${besteffort}/crio-conmon-${CID}.scope`)!)).toBe(UID_B);
    expect(
      pods.podUid(
        ids.get(`kubepods.slice/kubepods-pod${under(UID_C)}.slice/docker-${CID}.scope/init.scope`)!,
      ),
    ).toBe(UID_C);
    for (const p of [
      'kubepods.slice',
      'kubepods.slice/kubepods-burstable.slice',
      'system.slice/containerd.service',
      'user.slice/user-0.slice',
    ]) {
      expect(pods.podUid(ids.get(p)!), p).toBeUndefined();
    }
    expect(pods.podUid(idOf(dir))).toBeUndefined();
    // One entry per cgroup: every directory and the root, walked once.
    expect(pods.size).toBe(ids.size + 1);
    expect(pods.scans).toBe(1);
    expect(pods.truncated).toBe(0);
  });

  it('maps pods of the cgroupfs driver, under a prefix too', () => {
    const ids = tree(dir, [
      `kubelet/kubepods/burstable/pod${UID_A}/${CID}`,
      `kubelet/kubepods/pod${UID_B}/${'b'.repeat(64)}`,
      `kubelet/kubepods/besteffort/pod${UID_C}`,
      `system.slice/pod${UID_A}`,
    ]);
    const pods = new CgroupPods(dir);
    expect(pods.podUid(ids.get(`kubelet/kubepods/burstable/pod${UID_A}/${CID}`)!)).toBe(UID_A);
    expect(pods.podUid(ids.get(`kubelet/kubepods/burstable/pod${UID_A}`)!)).toBe(UID_A);
    expect(pods.podUid(ids.get(`kubelet/kubepods/pod${UID_B}/${'b'.repeat(64)}`)!)).toBe(UID_B);
    expect(pods.podUid(ids.get(`kubelet/kubepods/besteffort/pod${UID_C}`)!)).toBe(UID_C);
    expect(pods.podUid(ids.get(`system.slice/pod${UID_A}`)!)).toBeUndefined();
    expect(pods.podUid(ids.get('kubelet/kubepods/burstable')!)).toBeUndefined();
  });

  it('places a root that is itself inside the kubepods hierarchy by its own path', () => {
    const ids = tree(dir, [
      `kubepods/burstable/pod${UID_A}/${CID}`,
      `kubepods/besteffort/pod${UID_B}/${CID}`,
    ]);
    const pods = new CgroupPods(join(dir, 'kubepods/burstable'));
    expect(pods.podUid(ids.get(`kubepods/burstable/pod${UID_A}/${CID}`)!)).toBe(UID_A);
    // Outside the root: not walked.
    expect(pods.podUid(ids.get(`kubepods/besteffort/pod${UID_B}/${CID}`)!)).toBeUndefined();
    expect(pods.size).toBe(3);
    const inPod = new CgroupPods(join(dir, `kubepods/burstable/pod${UID_A}`));
    expect(inPod.podUid(ids.get(`kubepods/burstable/pod${UID_A}`)!)).toBe(UID_A);
    expect(inPod.podUid(ids.get(`kubepods/burstable/pod${UID_A}/${CID}`)!)).toBe(UID_A);
  });

  it('walks again for an unknown id at most once per minRescanMs', () => {
    const c = clock();
    const ids = tree(dir, [`kubepods/pod${UID_A}/${CID}`]);
    const pods = new CgroupPods(dir, { minRescanMs: 1000, now: c.now });
    expect(pods.podUid(ids.get(`kubepods/pod${UID_A}/${CID}`)!)).toBe(UID_A);
    expect(pods.scans).toBe(1);

    // A pod started after the walk: its id is unknown until the next walk is allowed.
    const more = tree(dir, [`kubepods/pod${UID_B}/${CID}`]);
    const late = more.get(`kubepods/pod${UID_B}/${CID}`)!;
    c.t += 500;
    expect(pods.podUid(late)).toBeUndefined();
    // A flood of unknown ids (host processes outside the root) walks no more.
    for (let id = 1; id <= 10_000; id++) pods.podUid(1_000_000_000 + id);
    expect(pods.scans).toBe(1);
    // Known ids never walk.
    c.t += 10_000;
    expect(pods.podUid(ids.get(`kubepods/pod${UID_A}`)!)).toBe(UID_A);
    expect(pods.scans).toBe(1);
    // The next unknown id after the window walks, and finds the new pod.
    expect(pods.podUid(late)).toBe(UID_B);
    expect(pods.scans).toBe(2);
    expect(pods.podUid(late)).toBe(UID_B);
    expect(pods.scans).toBe(2);
  });

  it('does not walk again for an id a later walk did not find', () => {
    const c = clock();
    tree(dir, [`kubepods/pod${UID_A}`]);
    const pods = new CgroupPods(dir, { minRescanMs: 1000, now: c.now });
    const outside = idOf(tmpdir());
    expect(pods.podUid(outside)).toBeUndefined();
    expect(pods.scans).toBe(1);
    c.t += 5000;
    expect(pods.podUid(outside)).toBeUndefined();
    expect(pods.scans).toBe(1);
    // Another unknown id still walks once the window has passed.
    expect(pods.podUid(outside + 1)).toBeUndefined();
    expect(pods.scans).toBe(2);
  });

  it('refuses ids that are not exact as numbers, without walking', () => {
    tree(dir, [`kubepods/pod${UID_A}`]);
    const pods = new CgroupPods(dir);
    for (const id of [2 ** 53, 2 ** 53 + 2, 2 ** 64, -1, 0, 1.5, Number.NaN]) {
      expect(pods.podUid(id), String(id)).toBeUndefined();
    }
    expect(pods.scans).toBe(0);
  });

  it('forgets deleted cgroups: at once without retention, after retainDeletedMs with it', () => {
    const c = clock();
    const leaf = `kubepods/burstable/pod${UID_A}/${CID}`;
    const ids = tree(dir, [leaf, `kubepods/burstable/pod${UID_B}/${CID}`]);
    const strict = new CgroupPods(dir, { retainDeletedMs: 0, now: c.now });
    const kept = new CgroupPods(dir, { retainDeletedMs: 10_000, now: c.now });
    expect(strict.podUid(ids.get(leaf)!)).toBe(UID_A);
    expect(kept.podUid(ids.get(leaf)!)).toBe(UID_A);
    expect(strict.size).toBe(7);

    rmdirSync(join(dir, leaf));
    rmdirSync(join(dir, `kubepods/burstable/pod${UID_A}`));
    c.t += 2000;
    strict.rescan();
    kept.rescan();
    expect(strict.size).toBe(5);
    expect(kept.size).toBe(5);
    expect(strict.podUid(ids.get(leaf)!)).toBeUndefined();
    expect(strict.podUid(ids.get(`kubepods/burstable/pod${UID_A}`)!)).toBeUndefined();
    // A pod's last bytes, read after its cgroups went, still count as the pod's for a while.
    expect(kept.podUid(ids.get(leaf)!)).toBe(UID_A);
    expect(kept.podUid(ids.get(`kubepods/burstable/pod${UID_B}/${CID}`)!)).toBe(UID_B);
    c.t += 10_001;
    expect(kept.podUid(ids.get(leaf)!)).toBeUndefined();
    expect(kept.podUid(ids.get(`kubepods/burstable/pod${UID_A}`)!)).toBeUndefined();
  });

  it('keeps at most maxEntries cgroups, pods first, and counts the rest', () => {
    const ids = tree(dir, [
      'a-system.slice/one.service',
      'a-system.slice/two.service',
      `kubepods/pod${UID_A}/${CID}`,
      `kubepods/pod${UID_B}/${CID}`,
      `kubepods/pod${UID_C}/${CID}`,
    ]);
    // 6 pod cgroups and 5 others (root, a-system.slice, its two services, kubepods).
    const pods = new CgroupPods(dir, { maxEntries: 8 });
    pods.rescan();
    expect(pods.size).toBe(8);
    expect(pods.truncated).toBe(3);
    for (const uid of [UID_A, UID_B, UID_C]) {
      expect(pods.podUid(ids.get(`kubepods/pod${uid}/${CID}`)!)).toBe(uid);
      expect(pods.podUid(ids.get(`kubepods/pod${uid}`)!)).toBe(uid);
    }
    const tiny = new CgroupPods(dir, { maxEntries: 4 });
    tiny.rescan();
    expect(tiny.size).toBe(4);
    expect(tiny.truncated).toBe(7);
    const found = [UID_A, UID_B, UID_C].flatMap((uid) => [
      tiny.podUid(ids.get(`kubepods/pod${uid}/${CID}`)!),
      tiny.podUid(ids.get(`kubepods/pod${uid}`)!),
    ]);
    expect(found.filter((u) => u !== undefined)).toHaveLength(4);
  });

  it('does not follow symbolic links', () => {
    const ids = tree(dir, [`kubepods/pod${UID_A}/${CID}`, `elsewhere/kubepods/pod${UID_B}/${CID}`]);
    const root = join(dir, 'kubepods');
    // A loop and a link into a pod outside the root: following either would walk what is not below it.
    symlinkSync(root, join(root, `pod${UID_A}`, 'loop'));
    symlinkSync(join(dir, `elsewhere/kubepods/pod${UID_B}`), join(root, `pod${UID_C}`));
    writeFileSync(join(root, 'cgroup.procs'), '');
    const pods = new CgroupPods(root);
    pods.rescan();
    expect(pods.size).toBe(3);
    expect(pods.podUid(ids.get(`kubepods/pod${UID_A}/${CID}`)!)).toBe(UID_A);
    expect(pods.podUid(ids.get(`elsewhere/kubepods/pod${UID_B}/${CID}`)!)).toBeUndefined();
  });

  it('survives cgroups that vanish mid-walk and directories it cannot read', () => {
    const ids = tree(dir, [
      `kubepods/pod${UID_A}/${CID}/sub`,
      `kubepods/pod${UID_B}/${CID}`,
      `kubepods/pod${UID_C}/${CID}`,
    ]);
    const gone = join(dir, `kubepods/pod${UID_A}/${CID}`);
    const locked = join(dir, `kubepods/pod${UID_B}`);
    hooks.beforeReaddir = (path) => {
      if (path === gone) {
        rmdirSync(join(gone, 'sub'));
        rmdirSync(gone);
      }
      if (path === locked)
        throw Object.assign(new Error(`EACCES: permission denied, scandir '${path}'`), { code: 'EACCES' });
    };
    const pods = new CgroupPods(dir);
    pods.rescan();
    expect(pods.scans).toBe(1);
    expect(pods.podUid(ids.get(`kubepods/pod${UID_C}/${CID}`)!)).toBe(UID_C);
    // Found before it went (its parent was read), so it is kept; its child never was.
    expect(pods.podUid(ids.get(`kubepods/pod${UID_A}/${CID}`)!)).toBe(UID_A);
    expect(pods.podUid(ids.get(`kubepods/pod${UID_A}/${CID}/sub`)!)).toBeUndefined();
    // The unreadable pod's own cgroup is known; what is below it is not.
    expect(pods.podUid(ids.get(`kubepods/pod${UID_B}`)!)).toBe(UID_B);
    expect(pods.podUid(ids.get(`kubepods/pod${UID_B}/${CID}`)!)).toBeUndefined();
  });

  it('knows nothing when the root does not exist', () => {
    const pods = new CgroupPods(join(dir, 'missing'));
    expect(pods.podUid(12345)).toBeUndefined();
    expect(pods.scans).toBe(1);
    expect(pods.size).toBe(0);
  });
});

// The real cgroup2 filesystem: ids are the kernel's cgroup ids. Needs root to make cgroups; skipped
// without it, unless NETMON_REQUIRE_PRIVILEGED=1 (CI), where that is a failure.
function realCgroupSkipReason(): string | null {
  if (process.platform !== 'linux') return `cgroup tests need Linux (this is ${process.platform})`;
  if (process.geteuid?.() !== 0) return 'cgroup tests need root (mkdir in the cgroup2 filesystem)';
  if (findCgroup2Mount() === undefined) return 'no cgroup2 filesystem in /proc/self/mountinfo';
  return null;
}
const realSkip = realCgroupSkipReason();
if (realSkip !== null) {
  if (process.env.NETMON_REQUIRE_PRIVILEGED === '1')
    throw new Error(`NETMON_REQUIRE_PRIVILEGED=1 but ${realSkip}`);
  console.warn(`skipping real cgroup tests: ${realSkip}`);
}

describe.skipIf(realSkip !== null)('CgroupPods on the real cgroup2 filesystem', () => {
  const made: string[] = [];
  afterEach(() => {
    // Deepest first: a cgroup with children cannot be removed.
    for (const path of made.reverse()) rmdirSync(path);
    made.length = 0;
  });

  it('resolves the id of a container cgroup to its pod', () => {
    const mount = findCgroup2Mount()!;
    const top = join(mount, `netmon-test-${process.pid}`);
    const parts = [
      'kubepods.slice',
      'kubepods-besteffort.slice',
      `kubepods-besteffort-pod${under(UID_A)}.slice`,
      'cri-containerd-abc.scope',
    ];
    let path = top;
    mkdirSync(path);
    made.push(path);
    for (const part of parts) {
      path = join(path, part);
      mkdirSync(path);
      made.push(path);
    }
    // A cgroup directory holds the kernel's files (cgroup.procs, …): the walk must pass them by.
    expect(readFileSync(join(path, 'cgroup.procs'), 'utf8')).toBe('');
    const pods = new CgroupPods(top);
    const leaf = idOf(path);
    expect(pods.podUid(leaf)).toBe(UID_A);
    expect(pods.podUid(idOf(made[3]))).toBe(UID_A);
    expect(pods.podUid(idOf(made[1]))).toBeUndefined();
    expect(pods.size).toBe(5);
    // Gone from the kernel, gone from the map after a walk.
    const strict = new CgroupPods(top, { retainDeletedMs: 0 });
    strict.rescan();
    rmdirSync(made.pop()!);
    strict.rescan();
    expect(strict.podUid(leaf)).toBeUndefined();
    expect(strict.size).toBe(4);
  });
});
