import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { AppError, Codes } from '../errors.js'
import { checkAccess } from '../operations/access.js'

/**
 * The operator API's prefixes: /admin-api/video/camera/, and /video/camera/ behind a gateway that
 * strips /admin-api. Its routes (routes/admin.ts, zlm-rtp.ts, events.ts, console.ts) all check
 * their callers with operatorsOnly.
 */
export const ADMIN_PREFIXES = ['/admin-api/video/camera', '/video/camera'] as const

/** The operator API's onRequest hook: bearer ADMIN_TOKEN, or loopback callers only while it is unset. */
export function operatorsOnly (config: Config) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const access = checkAccess(config.ADMIN_TOKEN, req.headers.authorization, req.socket.remoteAddress)
    if (access.ok) return
    // A failed login: who (the socket's address, and what it says it forwards for) and why; never the token.
    req.log.warn({ caller: req.socket.remoteAddress, forwardedFor: req.headers['x-forwarded-for']?.slice(0, 256), reason: access.reason, method: req.method, url: req.url.split('?')[0] }, 'operator API: access refused')
    if (access.reason === 'not-loopback') {
      throw new AppError('the operator API answers loopback callers only while ADMIN_TOKEN is unset; set ADMIN_TOKEN and send it as a bearer token', Codes.ADMIN_FORBIDDEN, 403)
    }
    reply.header('www-authenticate', 'Bearer realm="srs-hooks"')
    throw new AppError(access.reason === 'no-token' ? 'send ADMIN_TOKEN as "Authorization: Bearer <token>"' : 'wrong bearer token', Codes.ADMIN_UNAUTHORIZED, 401)
  }
}
