// Rewrites dnsmasq.txt: queries and the answers of a real server (dnsmasq, with its own name compression),
// one message per line as `name<TAB>hex`, for parse.test.ts and the fuzzer's corpus. Needs dnsmasq
// (Debian: dnsmasq-base) and no privilege:
//   .tools/bin/node packages/receivers/src/dns/testdata/capture.mjs
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import dns from 'dns-packet';

const PORT = 53535;
const here = path.dirname(new URL(import.meta.url).pathname);
const args = [
  '--keep-in-foreground',
  '--no-daemon',
  '--conf-file=/dev/null',
  '--no-resolv',
  '--no-hosts',
  '--listen-address=127.0.0.1',
  '--bind-interfaces',
  `--port=${PORT}`,
  '--user=nobody',
  '--log-facility=-',
  '--local-ttl=300',
  '--host-record=e1234.a.akamaiedge.net,23.45.67.89,2a02:26f0:1:2::3',
  '--host-record=e9.fastly.net,151.101.1.1',
  '--host-record=e9.fastly.net,151.101.65.1',
  '--host-record=e9.fastly.net,151.101.129.1',
  '--host-record=e9.fastly.net,2a04:4e42::1',
  '--host-record=db.svc.cluster.local,10.96.0.10',
  '--host-record=Mixed.Case.Example,192.0.2.7',
  '--cname=www.shop.example,www.shop.example.edgekey.net',
  '--cname=www.shop.example.edgekey.net,e1234.a.akamaiedge.net',
  '--cname=static.example.com,static.example.com.global.fastly.net',
  '--cname=static.example.com.global.fastly.net,e9.fastly.net',
  '--address=/nx.example/',
  '--txt-record=txt.example,v=spf1 -all,second string',
  '--mx-host=mail.example,mx1.mail.example,10',
  '--srv-host=_grpc._tcp.svc.cluster.local,db.svc.cluster.local,443,0,5',
];

const queries = [
  ['a-cname-chain', 'www.shop.example', 'A'],
  ['aaaa-cname-chain', 'www.shop.example', 'AAAA'],
  ['a-many', 'static.example.com', 'A'],
  ['aaaa-one', 'static.example.com', 'AAAA'],
  ['a-cluster', 'db.svc.cluster.local', 'A'],
  ['a-case-0x20', 'mIXed.cAsE.ExAmPle', 'A'],
  ['nxdomain', 'nope.nx.example', 'A'],
  ['refused-aaaa-no-upstream', 'db.svc.cluster.local', 'AAAA'],
  ['txt', 'txt.example', 'TXT'],
  ['mx', 'mail.example', 'MX'],
  ['srv', '_grpc._tcp.svc.cluster.local', 'SRV'],
  ['refused-no-upstream', 'unknown.example.org', 'A'],
  ['chaos-version', 'version.bind', 'TXT', 'CH'],
];

function query(id, name, type, klass = 'IN', edns = true) {
  return dns.encode({
    type: 'query',
    id,
    flags: dns.RECURSION_DESIRED,
    questions: [{ name, type, class: klass }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232 }] : [],
  });
}

function udp(msg) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`no answer to ${dns.decode(msg).questions[0].name}`));
    }, 5000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(msg, PORT, '127.0.0.1');
  });
}

function tcp(msg) {
  return new Promise((resolve, reject) => {
    const c = net.connect(PORT, '127.0.0.1');
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        c.end();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    c.on('error', reject);
    c.write(Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]));
  });
}

const server = spawn('dnsmasq', args, { stdio: ['ignore', 'ignore', 'inherit'] });
await new Promise((r) => setTimeout(r, 500));
const lines = [];
try {
  let id = 0x4100;
  for (const [label, name, type, klass] of queries) {
    const q = query(id++, name, type, klass);
    lines.push(`query-${label}\t${q.toString('hex')}`);
    lines.push(`${label}\t${(await udp(q)).toString('hex')}`);
  }
  const q = query(id++, 'www.shop.example', 'A', 'IN', false);
  lines.push(`query-no-edns\t${q.toString('hex')}`);
  lines.push(`a-cname-chain-no-edns\t${(await udp(q)).toString('hex')}`);
  lines.push(`tcp-aaaa-many\t${(await tcp(query(id++, 'e9.fastly.net', 'AAAA'))).toString('hex')}`);
  lines.push(`tcp-a-many\t${(await tcp(query(id++, 'static.example.com', 'A'))).toString('hex')}`);
} finally {
  server.kill();
}
writeFileSync(path.join(here, 'dnsmasq.txt'), `${lines.join('\n')}\n`);
console.log(`wrote ${lines.length} messages`);
