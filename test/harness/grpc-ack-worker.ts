// A gRPC server that acknowledges every unary call on the given paths with an empty message (valid for
// any proto3 response), in a worker thread: its timers (Node's HTTP date cache, gRPC deadlines) live on
// the worker's event loop, so a conformance check of the main thread's handles sees only what the
// component under test leaves behind.
import { Worker } from 'node:worker_threads';

export interface AckWorker {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** Calls acknowledged so far. */
  requests(): Promise<number>;
  close(): Promise<void>;
}

export async function startAckWorker(paths: readonly string[]): Promise<AckWorker> {
  const worker = new Worker(
    `
const { parentPort, workerData } = require('node:worker_threads');
const { Server, ServerCredentials } = require('@grpc/grpc-js');
let requests = 0;
const raw = (b) => b;
const server = new Server();
const definition = {};
const handlers = {};
workerData.paths.forEach((path, i) => {
  definition['m' + i] = { path, requestStream: false, responseStream: false,
    requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw };
  handlers['m' + i] = (call, cb) => { requests++; cb(null, Buffer.alloc(0)); };
});
server.addService(definition, handlers);
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => parentPort.postMessage({ port, err: err && err.message }));
parentPort.on('message', (m) => {
  if (m === 'requests') parentPort.postMessage({ requests });
  if (m === 'close') { server.forceShutdown(); parentPort.close(); }
});
`,
    { eval: true, workerData: { paths } },
  );
  const next = () =>
    new Promise<Record<string, unknown>>((resolve) => worker.once('message', (m) => resolve(m)));
  const started = await next();
  if (started.err) throw new Error(`gRPC ack worker: ${started.err}`);
  return {
    endpoint: `http://127.0.0.1:${started.port}`,
    requests: async () => {
      const reply = next();
      worker.postMessage('requests');
      return (await reply).requests as number;
    },
    close: async () => {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.postMessage('close');
      await exited;
    },
  };
}
