// What the exporter needs from the k8s_metadata extension: the owner of a DNS client's address, and word
// of deleted pods so their series go as kubezonnet's do. Typed structurally: @netmon/exporters does not
// depend on @netmon/processors (the extension's home).

/** The part of the k8s_metadata store's Entity the exporter reads. */
export interface PodOwner {
  readonly kind: string;
  namespace?: string;
  pod?: string;
  workloadKind?: string;
  workloadName?: string;
}

/** The part of the `k8s_metadata` extension (K8sMetadata) the exporter uses. */
export interface PodDirectory {
  readonly standalone: boolean;
  synced(): boolean;
  readonly store: {
    /** The owner of the 16-byte address at `off` in `buf`, or null. */
    lookup(buf: Uint8Array, off: number): PodOwner | null;
    hasPod(namespace: string, name: string): boolean;
    onPodDeleted(listener: (namespace: string, name: string) => void): () => void;
  };
}

/** The extension, if it is enabled and offers what the exporter needs. */
export function podDirectory(extension: unknown): PodDirectory | undefined {
  const e = extension as Partial<PodDirectory> | undefined;
  if (!e?.store || typeof e.store.onPodDeleted !== 'function' || typeof e.store.lookup !== 'function') {
    return undefined;
  }
  return e as PodDirectory;
}

const key = (namespace: string, name: string) => `${namespace}\u0000${name}`;

/**
 * Pods the store deleted since the last sweep. A pod recreated under its name (a StatefulSet) before the
 * sweep is still known to the store and keeps its series. Only pods the store knew and then deleted are
 * ever reported, so with `scope: node` the series of other nodes' pods are left to `expiration`.
 */
export class DeletedPods {
  private pending = new Set<string>();
  private unsubscribe?: () => void;

  constructor(private readonly directory: PodDirectory) {}

  start(): void {
    this.unsubscribe ??= this.directory.store.onPodDeleted((ns, name) => this.pending.add(key(ns, name)));
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.pending.clear();
  }

  /** Takes the pending deletions: a set of `namespace\0name` keys of pods still gone, or undefined. */
  take(): Set<string> | undefined {
    if (this.pending.size === 0) return undefined;
    const gone = new Set<string>();
    for (const k of this.pending) {
      const i = k.indexOf('\u0000');
      if (!this.directory.store.hasPod(k.slice(0, i), k.slice(i + 1))) gone.add(k);
    }
    this.pending = new Set();
    return gone.size > 0 ? gone : undefined;
  }
}

export { key as podKey };
