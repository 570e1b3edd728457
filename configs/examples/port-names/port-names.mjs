// Example netmon plugin: names the application protocol of each flow from its destination port, as the
// attribute `app.protocol`, so dashboards can say "https" instead of 443. Options:
//   names: { "<port>": "<name>" }   extra or overriding port names
//   protocols: [6, 17]              IANA protocol numbers to label (default TCP and UDP)

const WELL_KNOWN = {
  22: 'ssh',
  53: 'dns',
  80: 'http',
  443: 'https',
  2379: 'etcd',
  3306: 'mysql',
  5432: 'postgresql',
  6379: 'redis',
  6443: 'kube-apiserver',
  8080: 'http-alt',
  9092: 'kafka',
  9090: 'prometheus',
  10250: 'kubelet',
  27017: 'mongodb',
};

export default {
  mutates: true,

  start(ctx) {
    // Resolve the table once: process() runs for every batch.
    const names = new Map(
      Object.entries({ ...WELL_KNOWN, ...(ctx.options.names ?? {}) }).map(([p, n]) => [Number(p), String(n)]),
    );
    ctx.names = names;
    ctx.protocols = new Set(ctx.options.protocols ?? [6, 17]);
    ctx.logger.info({ ports: names.size }, 'port names loaded');
  },

  process(batch, ctx) {
    const names = ctx.names;
    const protocols = ctx.protocols;
    const column = batch.ensureColumn('app.protocol', 'string');
    for (let i = 0; i < batch.length; i++) {
      if (!protocols.has(batch.protocol[i])) continue;
      const name = names.get(batch.dstPort[i]);
      if (name !== undefined) column.set(i, name);
    }
    return batch;
  },
};
