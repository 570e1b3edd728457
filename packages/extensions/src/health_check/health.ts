import type { ComponentState, Host, QueueState } from '@netmon/core';

export interface Verdict {
  ok: boolean;
  reasons: string[];
}

const name = (c: ComponentState) => `${c.kind} "${c.id}"${c.pipeline ? ` in pipeline ${c.pipeline}` : ''}`;

/**
 * Liveness: the agent is doing its job, or restarting it could help. Fails on a fatal or permanent error,
 * on a recoverable error that has lasted longer than the budget (a backend down for good, a kernel
 * source that keeps failing, a stage stuck on one batch), and on a start that has lasted longer than the
 * budget. A merely idle pipeline is alive.
 */
export function liveness(host: Host, budgetMs: number, now = Date.now()): Verdict {
  const reasons: string[] = [];
  const phase = host.phase();
  if (phase === 'stopped') reasons.push('the agent has stopped');
  // Each component's start has its own deadline (service::start_timeout); this catches the sum of them,
  // or a service embedded without one, so a wedged start is restarted rather than left unready forever.
  if (phase === 'starting' && now - host.startedAt() > budgetMs) {
    const mins = ((now - host.startedAt()) / 60_000).toFixed(1);
    const pending = host.components().filter((c) => c.status === 'starting');
    const waiting = pending.length > 0 ? `; not started yet: ${pending.map(name).join(', ')}` : '';
    reasons.push(`the agent has been starting for ${mins} min${waiting}`);
  }
  for (const c of host.components()) {
    if (c.status === 'fatal_error' || c.status === 'permanent_error') {
      reasons.push(`${name(c)} is in ${c.status}: ${c.lastError ?? 'no detail'}`);
    } else if (
      c.status === 'recoverable_error' &&
      c.errorSince !== undefined &&
      now - c.errorSince > budgetMs
    ) {
      const mins = ((now - c.errorSince) / 60_000).toFixed(1);
      reasons.push(`${name(c)} has been failing for ${mins} min: ${c.lastError ?? 'no detail'}`);
    }
  }
  return { ok: reasons.length === 0, reasons };
}

/**
 * Readiness: every component started and none is broken beyond recovery. Not ready while starting or
 * stopping, so a rollout waits for a working agent.
 */
export function readiness(host: Host): Verdict {
  const reasons: string[] = [];
  const phase = host.phase();
  if (phase !== 'running') reasons.push(`the agent is ${phase}`);
  for (const c of host.components()) {
    if (c.status !== 'ok' && c.status !== 'recoverable_error') {
      reasons.push(`${name(c)} is ${c.status}${c.lastError ? `: ${c.lastError}` : ''}`);
    }
  }
  return { ok: reasons.length === 0, reasons };
}

/** The /status document: every component's status, last error and item counters, and every queue. */
export function statusDocument(host: Host, budgetMs: number) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const live = liveness(host, budgetMs);
  const ready = readiness(host);
  return {
    phase: host.phase(),
    healthy: live.ok,
    ready: ready.ok,
    reasons: [...new Set([...live.reasons, ...ready.reasons])],
    started_at: iso(host.startedAt()),
    uptime_seconds: Math.round((Date.now() - host.startedAt()) / 1000),
    components: host.components().map((c) => ({
      kind: c.kind,
      id: c.id,
      signal: c.signal ?? null,
      pipeline: c.pipeline ?? null,
      status: c.status,
      since: iso(c.since),
      last_error: c.lastError ?? null,
      last_error_time: iso(c.lastErrorTime),
      items: { ...c.items },
      ...(c.details ? { details: safeDetails(c.details) } : {}),
    })),
    queues: host.queues().map(queueDocument),
  };
}

/** A queue as /status and the last log lines show it (one spelling, so one alert or query reads both). */
export function queueDocument(q: QueueState) {
  return {
    pipeline: q.pipeline,
    receiver: q.receiver,
    capacity: q.capacity,
    depth: q.depth,
    dropped_batches: q.droppedBatches,
    dropped_items: q.droppedItems,
  };
}

/** A component's own facts; a throwing getter must not take /status down with it. */
function safeDetails(facts: () => Record<string, unknown>): Record<string, unknown> {
  try {
    return facts();
  } catch (err) {
    return { error: `details unavailable: ${err instanceof Error ? err.message : String(err)}` };
  }
}
