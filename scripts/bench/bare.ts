import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * The bare `node:http` server the hook figures are compared with: it reads the body, parses it as
 * JSON and answers `{"code":0}`, and does nothing else (no check, no validation, no log line, no
 * metric). BARE_SOURCE is the same server as a file of its own, started with plain `node` for the
 * restart gap (restart.ts).
 */
export function bareHandler (req: IncomingMessage, res: ServerResponse): void {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (chunk: string) => { body += chunk })
  req.on('end', () => {
    JSON.parse(body)
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': 10 })
    res.end('{"code":0}')
  })
}

/** bareHandler listening on HOST:PORT, as an ES module of its own. */
export const BARE_SOURCE = `import http from 'node:http'
${bareHandler.toString()}
http.createServer(bareHandler).listen(Number(process.env.PORT), process.env.HOST)
`
