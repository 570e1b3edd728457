// DNS lookups counted by question name (and, when the caller knows it, the client pod): what the prometheus
// (netmon_dns_lookups_total) and otlp (netmon.dns.lookup.count) exporters both keep, so both spell a name
// the same way and neither grows without bound when a resolver asks for endless random subdomains.
import { type DnsBatch, dnsName, type Granularity } from '@netmon/core';

export { dnsName };
import { DictionaryIds, SeriesTable, UNKNOWN } from './series-table.js';

/** The client of a lookup as the k8s_metadata store knows it: structurally the part of its Entity read. */
export interface DnsClient {
  readonly kind: string;
  namespace?: string;
  pod?: string;
  workloadKind?: string;
  workloadName?: string;
}

/** What identifies a client in a series, coarsest first. */
export type DnsClientLabel = 'namespace' | 'workload_kind' | 'workload' | 'pod';

/** The client labels a granularity keeps: namespace; workload kind and name unless `namespace`; pod at `pod`. */
export function dnsClientLabels(granularity: Granularity): DnsClientLabel[] {
  return [
    'namespace',
    ...(granularity === 'namespace' ? [] : (['workload_kind', 'workload'] as const)),
    ...(granularity === 'pod' ? (['pod'] as const) : []),
  ];
}

function clientValue(client: DnsClient, label: DnsClientLabel): string {
  switch (label) {
    case 'namespace':
      return client.namespace ?? '';
    case 'workload_kind':
      return client.workloadKind ?? '';
    case 'workload':
      return client.workloadName ?? '';
    case 'pod':
      return client.kind === 'pod' ? (client.pod ?? '') : '';
  }
}

/** Column of `table.values` holding the lookups of each series. */
export const LOOKUPS = 0;

/** Finds the client at the 16-byte address at `offset` of `addr` (the k8s_metadata store's lookup). */
export type DnsClientOf = (addr: Uint8Array, offset: number) => DnsClient | null | undefined;

/**
 * Lookups per series: labels are the client labels (in the order given), then the question name
 * (`dnsName`), the last label. Without client labels (or without `clientOf`) a series is a name.
 */
export class DnsSeries {
  readonly table: SeriesTable;
  /** Index of the question name among the table's labels (the last one). */
  readonly nameLabel: number;
  private readonly ids: Int32Array;
  private readonly values: (string | undefined)[];
  private readonly names = new DictionaryIds(dnsName);

  constructor(
    readonly clientLabels: readonly DnsClientLabel[],
    maxSeries: number,
  ) {
    const width = clientLabels.length + 1;
    this.table = new SeriesTable(width, maxSeries);
    this.table.addColumn();
    this.nameLabel = clientLabels.length;
    this.ids = new Int32Array(width);
    this.values = new Array(width).fill(undefined);
  }

  add(batch: DnsBatch, now: number, clientOf?: DnsClientOf): void {
    if (batch.length === 0) return;
    const t = this.table;
    const { ids, values, nameLabel } = this;
    this.names.reset(t, batch.names);
    const clients = nameLabel > 0 && clientOf ? new Map<DnsClient, string[]>() : undefined;
    for (let i = 0; i < batch.length; i++) {
      for (let l = 0; l < nameLabel; l++) ids[l] = 0;
      const client = clients && clientOf?.(batch.clientAddr, 16 * i);
      if (client) {
        let labels = clients?.get(client);
        if (!labels) {
          labels = this.clientLabels.map((l) => clientValue(client, l));
          clients?.set(client, labels);
        }
        for (let l = 0; l < nameLabel; l++) {
          if (labels[l] === '') continue;
          ids[l] = UNKNOWN;
          values[l] = labels[l];
        }
      }
      this.names.put(batch.question[i], ids, values, nameLabel);
      const s = t.findOrAdd(ids, now, values);
      t.values[LOOKUPS][s] += 1;
    }
  }
}
