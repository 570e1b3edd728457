// What the exporter needs from the k8s_metadata extension: the pod a DNS client's cgroup names (by UID) or
// the owner of its address, and word of deleted pods so their series go as kubezonnet's do.
import type { K8sMetadata } from '@netmon/extensions';

/** The part of the k8s_metadata extension the exporter uses. */
export type PodDirectory = Pick<K8sMetadata, 'standalone' | 'synced'> & {
  readonly store: Pick<K8sMetadata['store'], 'lookup' | 'podByUid' | 'hasPod' | 'onPodDeleted'>;
};

const key = (namespace: string, name: string) => `${namespace}\u0000${name}`;

/** [namespace, name] of a `podKey`. */
export function splitPodKey(k: string): [string, string] {
  const i = k.indexOf('\u0000');
  return [k.slice(0, i), k.slice(i + 1)];
}

/**
 * Pods the store deleted, remembered for `keepMs` (the exporter's expiration) so their series can go once
 * a scrape has shown their last bytes — whenever that is, and however late flows of a deleted pod still
 * come. A pod recreated under its name (a StatefulSet) is forgotten and keeps its series. Only pods the
 * store knew and then deleted are ever reported, so with `scope: node` the series of other nodes' pods
 * are left to `expiration`.
 */
export class DeletedPods {
  /** podKey → when the deletion was heard of (ms since the epoch). */
  private readonly deleted = new Map<string, number>();
  private unsubscribe?: () => void;

  constructor(
    private readonly directory: PodDirectory,
    private readonly keepMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    this.unsubscribe ??= this.directory.store.onPodDeleted((ns, name) => {
      const k = key(ns, name);
      // Re-inserted, so the map stays in deletion order.
      this.deleted.delete(k);
      this.deleted.set(k, this.clock());
    });
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.deleted.clear();
  }

  /** Keys (`namespace\0name`) of the pods deleted within keepMs before `now` and still gone, or undefined. */
  current(now: number): Set<string> | undefined {
    let gone: Set<string> | undefined;
    for (const [k, at] of this.deleted) {
      const [namespace, name] = splitPodKey(k);
      if (at < now - this.keepMs || this.directory.store.hasPod(namespace, name)) {
        this.deleted.delete(k);
        continue;
      }
      gone ??= new Set();
      gone.add(k);
    }
    return gone;
  }
}

export { key as podKey };
