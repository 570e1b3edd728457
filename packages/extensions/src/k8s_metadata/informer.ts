// One resource watched through @kubernetes/client-node's ListWatch, with what the client leaves to us:
// restart after an error (v2's ListWatch stops on any error but 410 and timeouts), sync and health
// tracking, lists paged and slimmed as they arrive, and a shutdown that leaves no request or timer behind.
//
// Memory: ListWatch caches every object it sees and needs of it only metadata.namespace, name and
// resourceVersion (cache.js: cached objects are keyed by namespace/name, relists diff by those keys and
// compare resourceVersion; deletes hand the cached object back). So, like a client-go transform
// function, each object is normalized into the store's record first and then cut down to
// {metadata: {name, namespace, uid, resourceVersion}} — the strings shared with the record. List pages
// are cut as they arrive, so a 100k-pod list never exists whole.
import {
  HttpMethod,
  type KubeConfig,
  type KubernetesListObject,
  ListWatch,
  RequestContext,
  Watch,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Agent, type Dispatcher, fetch } from 'undici';

/** What an informer caches of an object once it is in the store. */
export interface SlimObject {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

// biome-ignore lint/suspicious/noExplicitAny: API objects are read defensively by the normalizers.
type ApiObject = any;

export interface ResourceHandler<R> {
  /** The store's record for an API object, undefined when it cannot be read. */
  normalize(obj: ApiObject): R | undefined;
  /** The metadata kept in the informer's cache (reuse the record's strings). */
  slim(obj: ApiObject, record: R | undefined): SlimObject['metadata'];
  upsert(record: R): void;
  /** Removes what a deleted object (a watch event's, or a cached slim one after a relist) stood for. */
  remove(obj: SlimObject): void;
}

export interface InformerOptions<R> {
  /** pods, nodes, services, endpointslices: for logs, facts and metrics. */
  resource: string;
  /** The list and watch path, e.g. /api/v1/pods. */
  path: string;
  fieldSelector?: string;
  kc: KubeConfig;
  logger: Logger;
  handler: ResourceHandler<R>;
  /** Restart delay after an error: initialMs doubling to maxMs, with jitter. */
  backoff: { initialMs: number; maxMs: number };
  /** Items per list page (limit/continue). 0: one unpaged list. */
  pageSize: number;
  /** Multiplies the client's own re-watch delays (1 s doubling to 30 s): tests make them short. */
  reconnectScale: number;
  /** Sync or health changed. */
  onChange(): void;
  onEvent(type: 'add' | 'update' | 'delete'): void;
}

/** A list page must arrive within this; the API server's own request timeout is 60 s. */
const PAGE_TIMEOUT_MS = 60_000;
const GONE = Symbol('410 Gone');

export class Informer<R> {
  /** The first list has been applied. */
  synced = false;
  /** The last attempt to list or watch failed, and no watch has been established since. */
  failing = false;
  restarts = 0;
  lastError: string | undefined;

  private readonly lw: ListWatch<SlimObject>;
  private readonly prepared = new WeakMap<object, R | null>();
  private stopped = true;
  /** A list completed and its items are being applied: the next watch call means they are in. */
  private listed = false;
  /** The current watch has been established (an error now is an interruption, not a failed attempt). */
  private watching = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly sleeps = new Set<NodeJS.Timeout>();
  private lists = new AbortController();
  private readonly opening = new Set<Promise<AbortController>>();
  private readonly open = new Set<AbortController>();

  constructor(private readonly o: InformerOptions<R>) {
    this.lw = new ListWatch<SlimObject>(
      o.path,
      new TrackedWatch(o.kc, this),
      () => this.list(),
      false,
      undefined,
      o.fieldSelector,
      { delayFn: (ms) => this.sleep(ms * o.reconnectScale) },
    );
    this.lw.on('add', (obj) => this.upsert(obj, 'add'));
    this.lw.on('update', (obj) => this.upsert(obj, 'update'));
    this.lw.on('delete', (obj) => this.remove(obj));
    this.lw.on('error', (err) => this.failed(err));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lists = new AbortController();
    this.run();
  }

  /** Stops watching: no request, socket or timer of this informer remains when this resolves. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    // A pending re-watch delay never resolves now, so the client cannot open a watch after it.
    for (const t of this.sleeps) clearTimeout(t);
    this.sleeps.clear();
    this.lists.abort();
    await this.lw.stop();
    // Watches being opened are aborted as soon as they open (see opened()).
    await Promise.allSettled([...this.opening]);
    for (const c of this.open) c.abort();
    this.open.clear();
  }

  private run(): void {
    // Errors the client does not route to 'error' callbacks (e.g. an unusable cluster URL) reject here.
    this.lw.start().catch((err) => this.failed(err));
  }

  // --- the client's callbacks -----------------------------------------------------------------------

  private upsert(obj: ApiObject, type: 'add' | 'update'): void {
    let record: R | null;
    if (this.prepared.has(obj)) {
      record = this.prepared.get(obj) ?? null;
      this.prepared.delete(obj);
    } else {
      // Straight from a watch event: this very object is what the cache keeps, so slim it in place.
      record = this.normalize(obj);
      const metadata = this.o.handler.slim(obj, record ?? undefined);
      for (const key of Object.keys(obj)) if (key !== 'metadata') obj[key] = undefined;
      obj.metadata = metadata;
    }
    if (record === null) {
      // Unreadable now (e.g. a slice that lost its service label): what it stood for is gone.
      if (type === 'update') this.remove(obj);
      return;
    }
    try {
      this.o.handler.upsert(record);
      this.o.onEvent(type);
    } catch (err) {
      // The client swallows exceptions from watch callbacks: say so here.
      this.o.logger.error(
        { resource: this.o.resource, err: describeError(err) },
        'failed to apply an object',
      );
    }
  }

  private remove(obj: SlimObject): void {
    try {
      this.o.handler.remove(obj);
      this.o.onEvent('delete');
    } catch (err) {
      this.o.logger.error(
        { resource: this.o.resource, err: describeError(err) },
        'failed to remove an object',
      );
    }
  }

  private normalize(obj: ApiObject): R | null {
    try {
      return this.o.handler.normalize(obj) ?? null;
    } catch (err) {
      this.o.logger.debug({ resource: this.o.resource, err: describeError(err) }, 'unreadable object');
      return null;
    }
  }

  /** ListWatch stops after an error (but 410 and client timeouts): start it again after a backoff. */
  private failed(err: unknown): void {
    if (this.stopped) return;
    const message = describeError(err);
    this.lastError = message;
    const interrupted = this.watching;
    this.watching = false;
    if (this.restartTimer) return; // the same failure, reported twice
    this.failures++;
    const base = Math.min(this.o.backoff.maxMs, this.o.backoff.initialMs * 2 ** (this.failures - 1));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    const fields = { resource: this.o.resource, err: message, retry_ms: delay };
    if (interrupted && this.failures === 1) {
      // An established watch broke (API server restart, load balancer reset): just reconnect.
      this.o.logger.info(fields, 'watch interrupted; reconnecting');
    } else if (!this.failing) {
      this.failing = true;
      this.o.logger.warn(fields, 'cannot list or watch; retrying with backoff');
      this.o.onChange();
    } else {
      this.o.logger.debug(fields, 'still failing');
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      this.run();
    }, delay);
  }

  // --- hooks from TrackedWatch ----------------------------------------------------------------------

  /** Called as the client starts a watch, right after it applied a list if it made one. */
  beforeWatch(): void {
    if (!this.listed) return;
    this.listed = false;
    if (!this.synced) {
      this.synced = true;
      this.o.logger.debug({ resource: this.o.resource }, 'synced');
      this.o.onChange();
    }
  }

  track(opening: Promise<AbortController>): Promise<AbortController> {
    this.opening.add(opening);
    return opening.finally(() => this.opening.delete(opening));
  }

  opened(c: AbortController): void {
    if (this.stopped) {
      c.abort();
      return;
    }
    this.open.add(c);
    this.healthy();
  }

  closed(c: AbortController): void {
    this.open.delete(c);
  }

  /**
   * A watch that got no answer within the client's 30 s timeout. The client retries by itself (no error
   * callback), so nothing else would show that the API does not answer.
   */
  unanswered(err: unknown): void {
    if (this.stopped) return;
    this.lastError = describeError(err);
    if (this.failing) return;
    this.failing = true;
    this.o.logger.warn(
      { resource: this.o.resource, err: this.lastError },
      'watch request unanswered; retrying',
    );
    this.o.onChange();
  }

  healthy(): void {
    this.watching = true;
    this.failures = 0;
    if (this.failing) {
      this.failing = false;
      this.o.logger.info({ resource: this.o.resource, restarts: this.restarts }, 'recovered');
      this.o.onChange();
    }
  }

  // --- listing --------------------------------------------------------------------------------------

  /** The informer's list function: pages of `pageSize`, each item normalized and slimmed on arrival. */
  private async list(): Promise<KubernetesListObject<SlimObject>> {
    const signal = this.lists.signal;
    const server = this.o.kc.getCurrentCluster()?.server;
    if (!server) throw new Error('the kubeconfig has no current cluster');
    // One authentication per list: v2 makes a new connection pool (undici Agent) per call when TLS is
    // configured, so the pages share it and it is closed after. Without TLS it gives none (undici's global
    // pool would keep the connection idle for seconds after shutdown): use a pool of our own.
    const auth = new RequestContext(server, HttpMethod.GET);
    await this.o.kc.applySecurityAuthentication(auth);
    const dispatcher = auth.getDispatcher() ?? new Agent();
    const items: SlimObject[] = [];
    let resourceVersion = '';
    let limit = this.o.pageSize;
    let next: string | undefined;
    try {
      for (;;) {
        const url = new URL(server + this.o.path);
        if (limit > 0) url.searchParams.set('limit', String(limit));
        if (next) url.searchParams.set('continue', next);
        if (this.o.fieldSelector) url.searchParams.set('fieldSelector', this.o.fieldSelector);
        const page = await this.fetchPage(url, auth.getHeaders(), dispatcher, signal);
        if (page === GONE && next) {
          // The continue token expired (history compacted mid-list): list again, whole, as client-go does.
          items.length = 0;
          next = undefined;
          limit = 0;
          continue;
        }
        if (page === GONE) throw new ApiError(`GET ${url.pathname}: HTTP 410 Gone`, 410);
        resourceVersion = page?.metadata?.resourceVersion ?? '';
        for (const obj of Array.isArray(page?.items) ? page.items : []) items.push(this.prepare(obj));
        next = page?.metadata?.continue || undefined;
        if (!next) break;
      }
    } finally {
      await dispatcher.close().catch(() => {});
    }
    if (signal.aborted) throw new Error('stopped');
    this.listed = true;
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion }, items };
  }

  /** One page, parsed; GONE for 410. A page that takes longer than PAGE_TIMEOUT_MS fails. */
  private async fetchPage(
    url: URL,
    headers: Record<string, string>,
    dispatcher: Dispatcher,
    stop: AbortSignal,
  ): Promise<ApiObject | typeof GONE> {
    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(new Error(`GET ${url.pathname}: no complete answer in ${PAGE_TIMEOUT_MS / 1000} s`)),
      PAGE_TIMEOUT_MS,
    );
    try {
      const res = await fetch(url, { headers, dispatcher, signal: AbortSignal.any([stop, timeout.signal]) });
      if (res.status === 410) {
        await res.body?.cancel();
        return GONE;
      }
      if (res.status !== 200) throw await apiError(res, url);
      return await res.json();
    } finally {
      clearTimeout(timer);
    }
  }

  private prepare(obj: ApiObject): SlimObject {
    const record = this.normalize(obj);
    const slim = { metadata: this.o.handler.slim(obj, record ?? undefined) };
    this.prepared.set(slim, record);
    return slim;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return;
      const t = setTimeout(() => {
        this.sleeps.delete(t);
        resolve();
      }, ms);
      this.sleeps.add(t);
    });
  }
}

/**
 * The client's Watch, observed: whether a watch was established (the client reports only failures),
 * every open request, so shutdown can abort one the client opens while it is being stopped.
 */
class TrackedWatch<R> extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly informer: Informer<R>,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: ApiObject, watchObj?: ApiObject) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    this.informer.beforeWatch();
    let controller: AbortController | undefined;
    let ended = false;
    const opening = super.watch(
      path,
      // Bookmarks keep the resourceVersion of a quiet resource fresh (the client applies them), so a
      // re-watch after the client's 30 s inactivity timeout is less likely to meet 410 and relist.
      { ...query, allowWatchBookmarks: true },
      (phase, obj, watchObj) => {
        this.informer.healthy();
        callback(phase, obj, watchObj);
      },
      (err) => {
        if (controller) this.informer.closed(controller);
        else if ((err as Error | null)?.name === 'TimeoutError') this.informer.unanswered(err);
        ended = true;
        done(err);
      },
    );
    controller = await this.informer.track(opening);
    if (!ended) this.informer.opened(controller);
    return controller;
  }
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

async function apiError(res: Awaited<ReturnType<typeof fetch>>, url: URL): Promise<ApiError> {
  let detail = res.statusText;
  try {
    const body = (await res.json()) as { message?: string };
    if (body?.message) detail = body.message;
  } catch {
    // not a Status object
  }
  return new ApiError(`GET ${url.pathname}: HTTP ${res.status} ${detail}`, res.status);
}

/** One line for logs and /status: HTTP status, the connection error's code, an RBAC hint. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { statusCode?: number; cause?: { code?: string; message?: string } };
  let text = e.message || e.name;
  if (typeof e.statusCode === 'number' && !text.includes(`HTTP ${e.statusCode}`)) {
    text = `HTTP ${e.statusCode} ${text}`;
  }
  if (e.cause && (e.cause.code || e.cause.message)) text += ` (${e.cause.code ?? e.cause.message})`;
  if (e.statusCode === 401 || e.statusCode === 403) {
    text +=
      ': the agent needs a ClusterRole with list and watch on pods, nodes, services and endpointslices.discovery.k8s.io';
  }
  return text;
}
