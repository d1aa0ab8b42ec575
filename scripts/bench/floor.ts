import type { IncomingMessage, ServerResponse } from 'node:http'
import { parse } from 'node:querystring'
import { Counter, Histogram, Registry } from 'prom-client'
import { Compile } from 'typebox/compile'
import { secretsEqual } from '../../src/auth/signature.js'
import { createLogger, unredacted } from '../../src/logger.js'
import { HookBodies, redactQuery, streamKeyOf, type HookAction } from '../../src/srs/hooks.js'

/**
 * The floor of a hook on this stack (issue #11, item 1): node:http doing only what every hook
 * must, with the libraries srs-hooks uses. It reads and parses the body as bare.ts does, checks it
 * with the route's compiled TypeBox schema and its action, answers `{"code":0,"msg":null}`, writes
 * the hook's log line through srs-hooks' own logger (createLogger, unredacted: the same fields),
 * and counts it in prom-client (the hooks counter and the latency histogram). No Fastify, no caller
 * check, no handler. What it reaches against bare node:http is the most a hooks server can reach
 * in this harness while keeping one line and the metrics per hook.
 *
 * With `hookToken` (HOOK_TOKEN in its environment) it first checks the URL's `?token=` as srs-hooks
 * does, before reading the body: the query parsed, the value compared in constant time with
 * secretsEqual. It reads no X-Forwarded-For: which caller a trusted proxy names matters to
 * HOOK_ALLOW and to a refused hook's line, neither of which a hook needs.
 */
export function floorHandler (hookToken?: string): (req: IncomingMessage, res: ServerResponse) => void {
  const checks = new Map(Object.entries(HookBodies).map(([action, schema]) => [action, Compile(schema)]))
  const lines = unredacted(createLogger('info'))
  const registers = [new Registry()]
  const hooks = new Counter({ name: 'hooks_total', help: 'hooks', labelNames: ['action', 'outcome'] as const, registers })
  const latency = new Histogram({ name: 'hook_duration_seconds', help: 'latency', labelNames: ['action'] as const, buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30], registers })
  let requests = 0
  return (req, res) => {
    const started = performance.now()
    const url = req.url!
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    const action = path.slice(path.lastIndexOf('/') + 1) as HookAction
    if (hookToken !== undefined) {
      // Without a query, the whole URL parses to no token.
      const token = parse(url.slice(query + 1)).token
      // The bench sends the right token only: a wrong or missing one fails the run.
      /* c8 ignore next */
      if (typeof token !== 'string' || !secretsEqual(token, hookToken)) throw new Error(`${action}: wrong ?token=`)
    }
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { text += chunk })
    req.on('end', () => {
      const body = JSON.parse(text) as { action: string, client_id: string, vhost: string, app: string, stream: string, ip?: string, param?: string }
      const valid = checks.get(action)!.Check(body) && body.action === action
      // The bench sends valid hooks only: an invalid one fails the run (as a body bare.ts cannot parse does).
      /* c8 ignore next */
      if (!valid) throw new Error(`invalid ${action} body`)
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': 21 })
      res.end('{"code":0,"msg":null}')
      const ms = performance.now() - started
      lines.info({ reqId: `req-${(++requests).toString(36)}`, action, stream: streamKeyOf(body), client: body.client_id, ip: body.ip, param: redactQuery(body.param), outcome: 'allowed', code: 0, status: 200, ms: Math.round(ms * 10) / 10 }, 'hook')
      hooks.inc({ action, outcome: 'allowed' })
      latency.observe({ action }, ms / 1000)
    })
  }
}
