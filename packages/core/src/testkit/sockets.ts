// Raw client connections for tests of the HTTP servers against clients that misbehave: silent ones, ones
// that send their headers a byte at a time, ones that stop reading. Each records what it receives and how
// long it stayed open.
import { connect as connectTcp, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as connectTls } from 'node:tls';

/** Polls until `check` is true; rejects after `ms`. */
export async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RawConnection {
  readonly socket: Socket;
  /** Everything received so far (latin1). */
  text(): string;
  closed(): boolean;
  /** Milliseconds from connected to closed (NaN while open). */
  lasted(): number;
  /** Sends GET `path` and resolves with what came back once `done` says the answer is whole, or at the end. */
  request(path: string, done: (answer: string) => boolean): Promise<string>;
}

/**
 * Connects to 127.0.0.1:`port` (over TLS without checking the certificate when `tls`); resolves once
 * connected (the handshake done), or closed. The caller destroys the socket after the test.
 */
export async function rawConnection(port: number, opts: { tls?: boolean } = {}): Promise<RawConnection> {
  const socket: Socket = opts.tls
    ? connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false })
    : connectTcp(port, '127.0.0.1');
  let text = '';
  let closedAt: number | undefined;
  socket.on('error', () => undefined);
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    text += d;
  });
  socket.on('close', () => {
    closedAt = performance.now();
  });
  await new Promise<void>((resolve) => {
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve());
    socket.once('close', () => resolve());
  });
  const openedAt = performance.now();
  return {
    socket,
    text: () => text,
    closed: () => closedAt !== undefined,
    lasted: () => (closedAt ?? Number.NaN) - openedAt,
    async request(path, done) {
      const from = text.length;
      socket.write(`GET ${path} HTTP/1.1\r\nHost: netmon\r\n\r\n`);
      await until(() => done(text.slice(from)) || closedAt !== undefined);
      return text.slice(from);
    },
  };
}
