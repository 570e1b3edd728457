// What the health_check extension offers other components: extra routes on its HTTP server (the devzero
// exporter's zxporter-compatible GET /metrics). Consumers import this module, never the extension's code.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Extension, extensionKey } from '@netmon/core';

/** Answers one request on an extra route; it must end the response. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface HealthCheck extends Extension {
  /** The bound address once started (useful with port 0). */
  address(): AddressInfo | undefined;
  /**
   * Serves GET and HEAD `path` with `handler` until the returned function is called. Throws when the path
   * is taken: by /healthz, /readyz, /status or another component (`owner` names it in the error and in the
   * endpoint's 404 hints).
   */
  route(path: string, handler: RouteHandler, owner?: string): () => void;
}

export const HEALTH_CHECK = extensionKey<HealthCheck>('health_check');

/** The part of health_check a component serving its own route needs. */
export type HttpRoutes = Pick<HealthCheck, 'route'>;
