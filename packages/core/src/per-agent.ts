import type { ComponentSettings, Host } from './component.js';

/**
 * One object per running agent and component id. The framework creates an exporter once per signal it
 * serves; an exporter whose flows and dns instances must share one thing (a listening server, one send
 * queue, one request per interval) keeps that thing here. Keyed by the Host, so two services in one
 * process (tests) never share.
 */
export class PerAgent<T> {
  private readonly byHost = new WeakMap<Host, Map<string, T>>();

  /** The object for this component id in this agent, made by the first instance that asks. */
  get(settings: Pick<ComponentSettings, 'host' | 'id'>, make: () => T): T {
    let byId = this.byHost.get(settings.host);
    if (!byId) {
      byId = new Map();
      this.byHost.set(settings.host, byId);
    }
    let value = byId.get(settings.id);
    if (value === undefined) {
      value = make();
      byId.set(settings.id, value);
    }
    return value;
  }

  /** Forgets `value` once it has stopped, so a later start builds a fresh one; a newer one is kept. */
  forget(settings: Pick<ComponentSettings, 'host' | 'id'>, value: T): void {
    const byId = this.byHost.get(settings.host);
    if (byId?.get(settings.id) === value) byId.delete(settings.id);
  }
}
