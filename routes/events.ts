import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Config } from '../src/config.js'
import { AppError, Codes } from '../src/errors.js'
import type { LiveEvent } from '../src/operations/live-events.js'
import { operatorsOnly } from './admin.js'

/**
 * GET events/stream: this replica's events as server-sent events (text/event-stream), for the
 * console and any other reader. Each event is
 *
 *   id: <run>-<seq>
 *   event: <type>           takeover, refusal, eviction, server-down, redis-up...
 *   data: <the event as one line of JSON>
 *
 * A reader that reconnects with `Last-Event-ID` gets what it missed, from the events kept (the
 * most recent EVENTS_MAX); when some are gone, or the id is of an earlier run of the server, an
 * `event: gap` comes first and every kept event follows. `?last=N` starts a new reader with the
 * newest N kept events. Comments (`: ...`) keep an idle stream alive. A reader that lets more than
 * EVENTS_STREAM_QUEUE_BYTES wait is cut off (it resumes with its Last-Event-ID); at most
 * EVENTS_STREAM_CLIENTS streams are open at once. The streams end when the server closes.
 * Same access as the operator API.
 */

export interface EventsRoutesOptions {
  config: Config
}

const events: FastifyPluginAsyncTypebox<EventsRoutesOptions> = async (app, { config }) => {
  app.addHook('onRequest', operatorsOnly(config))
  const live = app.liveEvents

  app.get('/events/stream', {
    schema: {
      querystring: Type.Object({ last: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })) }, { additionalProperties: false })
    }
  }, (req, reply) => {
    if (live.readers >= config.EVENTS_STREAM_CLIENTS) {
      reply.header('retry-after', '5')
      throw new AppError(`${config.EVENTS_STREAM_CLIENTS} event streams are open already (EVENTS_STREAM_CLIENTS); try again later`, Codes.EVENTS_STREAM_FULL, 503)
    }
    const lastId = req.headers['last-event-id']
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Proxies such as nginx would otherwise hold events back in their buffers.
      'x-accel-buffering': 'no'
    })
    const write = (text: string): void => {
      res.write(text)
      if (res.writableLength > config.EVENTS_STREAM_QUEUE_BYTES) {
        // Nothing more is written to it: no event, no heartbeat.
        unsubscribe()
        clearInterval(heartbeat)
        req.log.info({ queued: res.writableLength }, 'events stream: the reader does not keep up; cut off (it resumes with Last-Event-ID)')
        res.destroy()
      }
    }
    const send = (e: LiveEvent): void => { write(`id: ${e.id}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n`) }

    // Subscribed before the replay is written: nothing published in between is lost.
    const unsubscribe = live.subscribe({ send, end: () => { res.end(': the server is shutting down\n\n') } })
    const heartbeat = setInterval(() => { write(': keep-alive\n\n') }, config.EVENTS_STREAM_HEARTBEAT_MS)
    res.on('close', () => {
      unsubscribe()
      clearInterval(heartbeat)
    })
    write(`retry: 1000\n: srs-hooks events, run ${live.run}\n\n`)
    if (typeof lastId === 'string' && lastId !== '') {
      const replay = live.after(lastId)
      if (replay.gap) write(`event: gap\ndata: ${JSON.stringify({ last_event_id: lastId, kept: replay.events.length })}\n\n`)
      for (const e of replay.events) send(e)
    } else {
      for (const e of live.newest(req.query.last ?? 0)) send(e)
    }
  })
}

export default events
