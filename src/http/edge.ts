import { STATUS_CODES, type ServerOptions } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { Codes } from '../errors.js'
import type { Log } from '../logger.js'
import { Millis } from '../settings.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** What happened at the server's edge, before any route: counted for the metrics. */
    edge: EdgeCounters
  }
}

/**
 * The server's edge: what a stranger can hold before any route runs. A request's headers and body
 * must arrive within REQUEST_TIMEOUT_MS (answered 408 and closed otherwise), and the server holds
 * MAX_CONNECTIONS connections at most (the next ones are closed at once). Both are Node's own http
 * server settings, so they hold for every request path. docs/limits.md describes them.
 */
export const EdgeSettings = {
  /** Bound on receiving a request's headers and body; the time spent answering it is not counted. */
  REQUEST_TIMEOUT_MS: Millis(10_000, 100),
  /** Connections held at once at most (hooks, operators, probes, idle keep-alive ones). */
  MAX_CONNECTIONS: Type.Integer({ default: 2048, minimum: 16, maximum: 1_000_000 })
}

export interface EdgeCounters {
  /** Requests to a callback path no hook has (a typo in srs.conf's hook URLs). */
  unknownCallbacks: number
  /** Requests whose headers and body did not arrive within REQUEST_TIMEOUT_MS. */
  timedOut: number
  /** Connections closed at once because MAX_CONNECTIONS were held. */
  dropped: number
}

/**
 * Node's server options for the bounds: the headers' own bound is the request's, and the
 * connections are checked often enough that a request is cut at most a tenth of its bound late
 * (Node checks every 30 s by default, which would triple a 10 s bound).
 */
export function serverOptionsOf (requestTimeoutMs: number): ServerOptions {
  return {
    headersTimeout: requestTimeoutMs,
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(requestTimeoutMs / 10)))
  }
}

/** A JSON answer written to a socket no request object owns any more, then the socket closed. */
function answerAndClose (socket: Socket, status: number, code: number, msg: string): void {
  const body = JSON.stringify({ code, msg })
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]!}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  }
  socket.destroy()
}

/**
 * Fastify's clientErrorHandler: a request that did not arrive in time is answered 408 with a code,
 * logged with its caller's address and counted; malformed ones are answered as Fastify does, with
 * our codes.
 */
export function clientErrorHandler (counters: EdgeCounters, timeoutMs: number, log: () => Log) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    // Reset by the caller, or already closed: nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      counters.timedOut++
      log().warn({ caller: socket.remoteAddress, timeoutMs }, 'request not received in time: answered 408, connection closed')
      answerAndClose(socket, 408, Codes.REQUEST_TIMEOUT, `the request's headers and body did not arrive within ${timeoutMs} ms (REQUEST_TIMEOUT_MS)`)
      return
    }
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      answerAndClose(socket, 431, Codes.INVALID_BODY, 'the request\'s headers are too large')
      return
    }
    answerAndClose(socket, 400, Codes.INVALID_BODY, 'malformed HTTP request')
  }
}

/** How often, at most, dropped connections are logged (each line says how many since the last). */
const DROP_LOG_MS = 10_000

/**
 * Caps the server's connections; connections past the cap are closed by Node at once. Each is
 * counted, and logged at most once per DROP_LOG_MS with how many, so a flood writes few lines.
 */
export function capConnections (app: FastifyInstance, max: number, now: () => number): void {
  app.server.maxConnections = max
  let logged = -Infinity
  let unlogged = 0
  app.server.on('drop', (d: { remoteAddress?: string }) => {
    app.edge.dropped++
    unlogged++
    const at = now()
    if (at - logged < DROP_LOG_MS) return
    app.log.warn({ caller: d.remoteAddress, dropped: unlogged, maxConnections: max }, 'connections refused: MAX_CONNECTIONS are held')
    logged = at
    unlogged = 0
  })
}
