import type { IncomingHttpHeaders } from 'node:http'
import { AppError, Codes } from '../errors.js'

type Done = (err: Error | null, body?: unknown) => void
type JsonParser = (req: never, body: string, done: Done) => void

/** The longest content type quoted back (it comes from the caller). */
const TYPE_MAX = 100

/**
 * A hook body parser: Fastify's JSON parser (bodies of any content type, since `curl -d` sends a
 * form type), whose refusal says what was received instead of Fastify's "content-type is set to
 * 'application/json'": the content type, and that the media server sends JSON. Synchronous, as
 * Fastify's parser is.
 */
export function hookJsonParser (json: JsonParser, sender: string): (req: { headers: IncomingHttpHeaders }, body: string, done: Done) => void {
  return (req, body, done) => {
    json(req as never, body, (err, value) => {
      if (err === null) return done(null, value)
      const sent = req.headers['content-type']
      const type = sent === undefined ? 'no Content-Type' : `Content-Type ${JSON.stringify(sent.slice(0, TYPE_MAX))}`
      const what = body.length === 0 ? 'the body is empty' : isJson(body) ? 'the body holds a __proto__ or constructor key, which is refused' : 'the body is not valid JSON'
      const hint = /^application\/json\s*(;|$)/i.test(sent ?? '')
        ? `${sender} sends each hook as a JSON object`
        : `${sender} sends JSON: with curl, add -H 'Content-Type: application/json' and send a JSON object`
      done(new AppError(`${what} (received with ${type}); ${hint}`, Codes.INVALID_JSON, 400, { cause: err }))
    })
  }
}

function isJson (body: string): boolean {
  try {
    JSON.parse(body)
    return true
  } catch {
    return false
  }
}
