// What the devzero exporter needs from the health_check extension, as a structural type: exporters do not
// import the agent package that ships health_check.
import type { IncomingMessage, ServerResponse } from 'node:http';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** An extension that serves extra GET routes on its HTTP server (health_check does). */
export interface HttpRoutes {
  /**
   * Serves GET (and HEAD) `path` with `handler` until the returned function is called. Throws when the
   * path is already served; `owner` names the component in that error and in the endpoint's 404 hints.
   */
  route(path: string, handler: RouteHandler, owner?: string): () => void;
}

export function hasRoutes(ext: unknown): ext is HttpRoutes {
  return typeof (ext as Partial<HttpRoutes> | undefined)?.route === 'function';
}
