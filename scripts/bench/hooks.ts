/**
 * Hook requests as SRS 6 sends them, and streams that the simulator knows.
 */
import { CALLBACK_PREFIXES } from '../../src/app.js'
import type { HookAction } from '../../src/srs/hooks.js'
import { BENCH_SERVER_ID, type HttpRequest } from './harness.js'
import type { SimProcess } from './sim.js'

/**
 * SRS 6's release delay: it releases a kicked publisher within milliseconds when nothing (HLS,
 * transcoding) holds it up (docs/srs-protocol.md, section 10: `publish.active=false` about 5 ms
 * after the DELETE).
 */
export const SRS_RELEASE_MS = 5

/** A stream as SRS's API lists it. */
export interface KnownStream { id: string, app: string, name: string }

const DVR = { cwd: '/usr/local/srs', file: './objs/nginx/html/live/cam.1700000000000.flv' }
const HLS = {
  duration: 10,
  cwd: '/usr/local/srs',
  file: './objs/nginx/html/live/cam-7.ts',
  url: 'live/cam-7.ts',
  m3u8: './objs/nginx/html/live/cam.m3u8',
  m3u8_url: 'live/cam.m3u8',
  seq_no: 7
}
const CLOSE = { send_bytes: 3877, recv_bytes: 125_000 }
/** What each hook carries besides the common and stream fields (docs/srs-protocol.md section 2). */
const EXTRA: Record<HookAction, object> = {
  on_connect: { pageUrl: '' },
  on_close: CLOSE,
  on_publish: {},
  on_unpublish: {},
  on_play: { pageUrl: '' },
  on_stop: {},
  on_dvr: DVR,
  on_hls: HLS
}

/** A POST of `action` about `stream` from client `clientId`; `over` replaces fields (an on_dvr's file). */
export function hookRequest (action: HookAction, stream: KnownStream, clientId: string, over: object = {}): HttpRequest {
  const body = {
    server_id: BENCH_SERVER_ID,
    service_id: 'bench001',
    action,
    client_id: clientId,
    ip: '192.0.2.10',
    vhost: '__defaultVhost__',
    app: stream.app,
    tcUrl: `rtmp://127.0.0.1:1935/${stream.app}`,
    stream: stream.name,
    param: '?vhost=__defaultVhost__',
    stream_url: `/${stream.app}/${stream.name}`,
    stream_id: stream.id,
    ...EXTRA[action],
    ...over
  }
  return { method: 'POST', path: `${CALLBACK_PREFIXES[0]}/${action}`, body: JSON.stringify(body) }
}

/**
 * Makes the simulator know `n` streams, none published: each has a viewer waiting, as when a player
 * connects before the camera. An on_publish for one is SRS's usual case (stream_id known,
 * `publish.active` false), so the server's lookup costs what it costs in production.
 */
export async function knownStreams (sim: SimProcess, app: string, n: number): Promise<KnownStream[]> {
  for (let i = 0; i < n; i++) await sim.play({ app, stream: `s${i}` })
  const res = await fetch(`${sim.apiUrl}/api/v1/streams/?count=${(await sim.clientIds()).length}`)
  const { streams } = await res.json() as { streams: KnownStream[] }
  return streams.filter((s) => s.app === app)
}

/**
 * Takes over `n` live streams one after another, each once (a camera reconnecting; taking one
 * stream over and over would trip the flap guard). The newcomers' on_publish times, and how many
 * takeovers failed.
 */
export async function takeOverInTurn (sim: SimProcess, prefix: string, n: number): Promise<{ ms: number[], failed: number }> {
  await sim.seedLive(n, { prefix })
  const ms: number[] = []
  let failed = 0
  for (let i = 0; i < n; i++) {
    const r = await sim.publish({ app: 'live', stream: prefix + i })
    failed += Number(!r.ok)
    // The newcomer's on_publish as the simulator saw it, from sending to our reply.
    ms.push(await sim.hookMs('on_publish', r.clientId))
  }
  return { ms, failed }
}
