// zxporter-netmon's GET /metrics document (its MetricsResponse, encoded by Go's encoding/json): a peek at
// the interval not yet flushed. Keys in the Go structs' order, `omitempty` fields left out when empty.
import { type Interval, lookupPod } from './interval.js';

/**
 * A time as Go's time.Time marshals it (RFC 3339 with nanoseconds, trailing zeros of the fraction
 * dropped, no fraction when it is zero); UTC.
 */
export function goTime(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-01-01T00:00:10.500Z
  const [whole, fraction] = iso.slice(0, -1).split('.');
  const digits = (fraction ?? '').replace(/0+$/, '');
  return `${whole}${digits ? `.${digits}` : ''}Z`;
}

/**
 * The document: `{"node_name", "items", "dns_lookups", "ip2domain"?}`. `dns_lookups` is null when no dns
 * pipeline feeds the exporter (zxporter: DNS disabled). Compact, one trailing newline (json.Encoder).
 */
export function metricsDocument(
  nodeName: string,
  interval: Interval,
  dns: boolean,
  ip2domain: Record<string, string>,
): string {
  const items: Record<string, unknown>[] = [];
  for (const e of interval.entries()) {
    const item: Record<string, unknown> = { src_ip: e.srcIp, dst_ip: e.dstIp };
    if (e.srcPod !== '') item.src_pod_name = e.srcPod;
    if (e.srcNamespace !== '') item.src_pod_namespace = e.srcNamespace;
    if (e.dstPod !== '') item.dst_pod_name = e.dstPod;
    if (e.dstNamespace !== '') item.dst_pod_namespace = e.dstNamespace;
    item.protocol = e.protocol;
    item.dst_port = e.dstPort;
    item.tx_bytes = e.txBytes;
    item.rx_bytes = e.rxBytes;
    item.tx_packets = e.txPackets;
    item.rx_packets = e.rxPackets;
    item.timestamp = goTime(e.time);
    items.push(item);
  }
  let lookups: Record<string, unknown>[] | null = null;
  if (dns) {
    const pods = interval.lookups.some((l) => !l.pod) ? interval.podsByIp() : undefined;
    lookups = interval.lookups.map((l) => {
      const lookup: Record<string, unknown> = {
        client_ip: l.clientIp,
        domain: l.domain,
        resolved_ips: l.resolvedIps,
        timestamp: goTime(l.time),
      };
      const pod = lookupPod(l, pods);
      if (pod) {
        lookup.src_pod_name = pod.name;
        if (pod.namespace !== '') lookup.src_pod_namespace = pod.namespace;
      }
      return lookup;
    });
  }
  const doc: Record<string, unknown> = { node_name: nodeName, items, dns_lookups: lookups };
  if (Object.keys(ip2domain).length > 0) doc.ip2domain = ip2domain;
  return `${JSON.stringify(doc)}\n`;
}
