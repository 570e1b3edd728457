// dnsmasq answering for shop.test in a test namespace: the DNS server of the dns tests.
import type { ChildProcess } from 'node:child_process';
import type { NetnsPair } from './netns.js';

/** shop.test's address: outside every test network, so only its answer can lead a client there. */
export const SHOP_IP = '203.0.113.80';

/**
 * dnsmasq in namespace `a` answering for shop.test from its own records, with their TTLs; every other
 * name under shop.test is NXDOMAIN.
 */
export function startDnsmasq(net: NetnsPair, port = 53): ChildProcess {
  return net.spawn(net.a, 'dnsmasq', [
    '--keep-in-foreground',
    `--port=${port}`,
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--pid-file=',
    '--log-facility=-',
    '--user=root',
    '--bind-interfaces',
    `--listen-address=${net.ipA}`,
    `--listen-address=${net.ip6A}`,
    '--local=/shop.test/',
    `--host-record=www.shop.test,${net.ipA},${net.ip6A},120`,
    `--host-record=shop.test,${SHOP_IP},300`,
    '--host-record=short.shop.test,10.200.0.7,2',
    '--cname=alias.shop.test,www.shop.test,60',
    '--cname=deep.shop.test,alias.shop.test,30',
  ]);
}
