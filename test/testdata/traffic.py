#!/usr/bin/env python3
"""Traffic for the kernel tests, run inside a test network namespace (ip netns exec NS python3 traffic.py ...).

  serve-http DIR HOST PORT          HTTP server for DIR (HOST '::' listens on IPv4 and IPv6)
  get URL [COUNT] [RATE]            COUNT sequential HTTP GETs on new connections (each closes);
                                    RATE (bytes/s) slows the reading of each body
  udp-echo HOST PORT                answers every UDP datagram with the same bytes
  udp-send HOST PORT COUNT SIZE     sends COUNT datagrams of SIZE bytes from one socket, waits for echoes
  icmp-echo HOST COUNT              COUNT ICMP / ICMPv6 echo requests (raw socket: needs root)
  dns-flood HOST PORT COUNT         COUNT DNS answers sent from UDP port 53 to HOST:PORT
  udp-sink HOST PORT                counts datagrams arriving at HOST:PORT until a second passes without one
"""
import http.client
import http.server
import os
import socket
import struct
import sys
import time
import functools


def serve_http(directory, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(http.server.ThreadingHTTPServer):
        address_family = family

        def server_bind(self):
            if family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    handler.log_message = lambda *a: None
    server = Server((host, int(port)), handler)
    print("listening", flush=True)
    server.serve_forever()


def get(url, count="1", rate="0"):
    from urllib.parse import urlsplit

    u = urlsplit(url)
    total = 0
    for _ in range(int(count)):
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
        if int(rate) > 0:
            # A small receive window, so the kernel moves the body at the pace we read it (otherwise
            # socket buffers would swallow megabytes at once and the flow would not span intervals).
            family = socket.AF_INET6 if ":" in u.hostname else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.connect((u.hostname, u.port or 80))
            conn.sock = sock
        conn.request("GET", u.path)
        resp = conn.getresponse()
        if int(rate) > 0:
            chunk = max(1, int(rate) // 10)
            while True:
                data = resp.read(chunk)
                if not data:
                    break
                total += len(data)
                time.sleep(0.1)
        else:
            total += len(resp.read())
        conn.close()
    print(total, flush=True)


def udp_echo(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    print("listening", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def udp_send(host, port, count, size):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    got = 0
    for _ in range(int(count)):
        s.sendto(b"x" * int(size), (host, int(port)))
        got += len(s.recvfrom(65535)[0])
    print(got, flush=True)


def dns_answer(ident):
    """A DNS answer: flood.test A 10.0.0.1, TTL 60, with the name compressed."""
    header = struct.pack("!HHHHHH", ident & 0xFFFF, 0x8180, 1, 1, 0, 0)
    question = b"\x05flood\x04test\x00" + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, 1])
    return header + question + answer


def dns_flood(host, port, count):
    """Sends `count` DNS answers from UDP port 53 to host:port, in bursts the veth's backlog absorbs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 53))
    for i in range(int(count)):
        s.sendto(dns_answer(i), (host, int(port)))
        if i % 50 == 49:
            time.sleep(0.002)
    print(count, flush=True)


def udp_sink(host, port):
    """Counts the datagrams that reach host:port until none came for a second; prints the count."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((host, int(port)))
    print("listening", flush=True)
    got = 0
    s.settimeout(30)
    while True:
        try:
            s.recv(65535)
        except socket.timeout:
            break
        got += 1
        s.settimeout(1)
    print("received", got, flush=True)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(host, count):
    v6 = ":" in host
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(5)
    ident = os.getpid() & 0xFFFF
    replies = 0
    for seq in range(int(count)):
        payload = b"netmon" * 8
        kind = 128 if v6 else 8
        header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
        csum = 0 if v6 else checksum(header + payload)  # the kernel fills the ICMPv6 checksum
        s.sendto(struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload, (host, 0))
        while True:
            data = s.recv(2048)
            icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
            if icmp[0] == (129 if v6 else 0) and struct.unpack("!H", icmp[4:6])[0] == ident:
                replies += 1
                break
    print(ident, replies, flush=True)


COMMANDS = {
    "serve-http": serve_http,
    "get": get,
    "udp-echo": udp_echo,
    "udp-send": udp_send,
    "icmp-echo": icmp_echo,
    "dns-flood": dns_flood,
    "udp-sink": udp_sink,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
