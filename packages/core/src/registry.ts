import type { ComponentKind, Factory } from './component.js';

const TYPE_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;

/** The factories a distribution knows, by kind and type. The agent package fills it; the core never does. */
export class Registry {
  private readonly byKind = new Map<ComponentKind, Map<string, Factory>>();

  constructor(factories: Iterable<Factory> = []) {
    for (const f of factories) this.register(f);
  }

  register(factory: Factory): this {
    if (!TYPE_PATTERN.test(factory.type)) {
      throw new Error(`component type "${factory.type}" must be lower_snake_case ([a-z][a-z0-9_]*)`);
    }
    let kind = this.byKind.get(factory.kind);
    if (!kind) {
      kind = new Map();
      this.byKind.set(factory.kind, kind);
    }
    if (kind.has(factory.type)) throw new Error(`${factory.kind} type "${factory.type}" is registered twice`);
    kind.set(factory.type, factory);
    return this;
  }

  get(kind: ComponentKind, type: string): Factory | undefined {
    return this.byKind.get(kind)?.get(type);
  }

  types(kind: ComponentKind): string[] {
    return [...(this.byKind.get(kind)?.keys() ?? [])].sort();
  }

  all(): Factory[] {
    const order: ComponentKind[] = ['receiver', 'processor', 'exporter', 'extension'];
    return order.flatMap((k) => this.types(k).map((t) => this.get(k, t)!));
  }
}
