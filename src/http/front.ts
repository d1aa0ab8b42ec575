import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where SRS's hook routes register their front. */
    hookFront: HookFront
  }
}

/**
 * Serves one request whose method and path it was registered for, or declines it (false) before
 * reading anything, so that Fastify serves it instead.
 */
export type FrontRoute = (req: IncomingMessage, res: ServerResponse) => boolean

/** The server options Fastify applies to a server it makes itself (fastify/lib/server.js; buildApp sets no maxRequestsPerSocket). */
export interface ServerTimeouts {
  /** Fastify's `http` option: what Node's createServer is given (buildApp always sets it: the request bounds). */
  http: ServerOptions
  keepAliveTimeout?: number
  requestTimeout?: number
  connectionTimeout?: number
}

/**
 * The HTTP server in front of Fastify. SRS's hooks are the requests every publisher and player
 * waits on, and Fastify's request path (routing, request and reply objects, hooks, content-type
 * parsing, serialization) cost more than the hook itself (BENCHMARKS.md). A route registered here
 * for an exact path is served by its own code, which calls the same checks, handlers, error
 * wording, log line and metrics as its Fastify route; whatever it declines (and every other
 * request) goes to Fastify. While the app closes, everything goes to Fastify (503, connection
 * closed). A front that does not `serve` takes no route: every request goes to Fastify.
 */
export class HookFront {
  /** The next request id, for Fastify's requests (genReqId) and the front's alike. */
  readonly requestId = requestIds()
  readonly #serves: boolean
  readonly #routes = new Map<string, FrontRoute>()
  #closing = false

  constructor (serves: boolean) {
    this.#serves = serves
  }

  /** Serves POST requests to exactly `path` (no query string); nothing if this front does not serve. */
  add (path: string, route: FrontRoute): void {
    if (this.#serves) this.#routes.set(path, route)
  }

  /** True once the app has begun to close: replies in flight close their connection. */
  get closing (): boolean {
    return this.#closing
  }

  close (): void {
    this.#closing = true
  }

  /** A server for Fastify's `serverFactory`: this front, then Fastify's handler; set up as Fastify sets up its own. */
  server (fastify: RequestListener, options: ServerTimeouts): Server {
    const server = createServer(options.http, (req, res) => {
      const route = req.method === 'POST' && !this.#closing ? this.#routes.get(req.url!) : undefined
      if (route === undefined || !route(req, res)) fastify(req, res)
    })
    server.keepAliveTimeout = options.keepAliveTimeout!
    server.requestTimeout = options.requestTimeout!
    server.setTimeout(options.connectionTimeout!)
    return server
  }
}

/** Request ids as Fastify's default makes them: req-1, req-2... */
function requestIds (): () => string {
  let next = 0
  return () => {
    next = (next + 1) & 0x7fffffff
    return `req-${next.toString(36)}`
  }
}
