import { Type, type Static, type TSchema } from 'typebox'
import { DEFAULT_VHOST, FieldBounds, streamUrl } from '../streams.js'

/**
 * What SRS POSTs to each hook (docs/srs-protocol.md section 2) and what we answer (section 3).
 * Fields that differ across SRS 4 to 7 are optional; extra fields are allowed because SRS adds
 * some in new versions; present fields must have the right type.
 */

export const HOOK_ACTIONS = [
  'on_connect', 'on_close', 'on_publish', 'on_unpublish', 'on_play', 'on_stop', 'on_dvr', 'on_hls'
] as const
export type HookAction = typeof HOOK_ACTIONS[number]

/** A field SRS always fills but that a hand-written test request may leave short. */
const Name = Type.String({ maxLength: FieldBounds.name })
const Id = Type.String({ maxLength: FieldBounds.id })
const Url = Type.String({ maxLength: FieldBounds.url })
const Path = Type.String({ maxLength: FieldBounds.path })

/** SRS >= 4.0.34 sends an 8-character string; SRS <= 3 sent an integer. */
export const ClientId = Type.Union([
  Type.String({ minLength: 1, maxLength: 64 }),
  Type.Integer({ minimum: 0 })
])

const Common = {
  action: Type.String({ maxLength: 32 }),
  client_id: ClientId,
  server_id: Type.Optional(Id),
  service_id: Type.Optional(Id),
  ip: Type.Optional(Type.String({ maxLength: 64 })),
  vhost: Type.String({ minLength: 1, maxLength: FieldBounds.host }),
  app: Type.String({ minLength: 1, maxLength: FieldBounds.name })
}

const StreamFields = {
  stream: Type.String({ minLength: 1, maxLength: FieldBounds.name }),
  param: Type.Optional(Url),
  tcUrl: Type.Optional(Url),
  stream_url: Type.Optional(Type.String({ maxLength: FieldBounds.streamUrl })),
  stream_id: Type.Optional(Id)
}

const hookBody = <P extends Record<string, TSchema>>(props: P) =>
  Type.Object({ ...Common, ...props }, { additionalProperties: true })

export const OnConnectBody = hookBody({ ...StreamFields, stream: Type.Optional(Name), pageUrl: Type.Optional(Url) })
export const OnCloseBody = hookBody({
  send_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
  recv_bytes: Type.Optional(Type.Integer({ minimum: 0 }))
})
export const OnPublishBody = hookBody(StreamFields)
export const OnPlayBody = hookBody({ ...StreamFields, pageUrl: Type.Optional(Url) })
export const OnDvrBody = hookBody({ ...StreamFields, cwd: Type.Optional(Path), file: Type.String({ minLength: 1, maxLength: FieldBounds.path }) })
export const OnHlsBody = hookBody({
  ...StreamFields,
  duration: Type.Optional(Type.Number({ minimum: 0 })),
  cwd: Type.Optional(Path),
  file: Type.Optional(Path),
  url: Type.Optional(Url),
  m3u8: Type.Optional(Path),
  m3u8_url: Type.Optional(Url),
  seq_no: Type.Optional(Type.Integer())
})

export type OnConnect = Static<typeof OnConnectBody>
export type OnClose = Static<typeof OnCloseBody>
export type OnPublish = Static<typeof OnPublishBody>
export type OnPlay = Static<typeof OnPlayBody>
export type OnDvr = Static<typeof OnDvrBody>
export type OnHls = Static<typeof OnHlsBody>

/** Hook body schema per action. on_unpublish and on_stop carry on_publish's fields. */
export const HookBodies = {
  on_connect: OnConnectBody,
  on_close: OnCloseBody,
  on_publish: OnPublishBody,
  on_unpublish: OnPublishBody,
  on_play: OnPlayBody,
  on_stop: OnPublishBody,
  on_dvr: OnDvrBody,
  on_hls: OnHlsBody
} as const satisfies Record<HookAction, TSchema>

/**
 * Our answer. SRS allows on HTTP 200/201 with a JSON object whose integer `code` is 0; any other
 * code refuses (SRS logs it). `msg` says why in words.
 */
export const HookReply = Type.Object({
  code: Type.Integer(),
  msg: Type.Union([Type.String(), Type.Null()])
})
export type HookReply = Static<typeof HookReply>

export const ALLOW: HookReply = Object.freeze({ code: 0, msg: null })

export { DEFAULT_VHOST, streamUrl }

/** The key we file a stream under: SRS's stream_url when it sent one (SRS >= 5.0.55), else the same built here. */
export function streamKeyOf (body: { vhost: string, app: string, stream: string, stream_url?: string | undefined }): string {
  return body.stream_url !== undefined && body.stream_url !== '' ? body.stream_url : streamUrl(body.vhost, body.app, body.stream)
}

/** SRS's stream id, when the hook carried a non-empty one (SRS >= 5.0.55 with a statistics stream). */
export function streamIdOf (body: { stream_id?: string | undefined }): string | undefined {
  return body.stream_id === '' ? undefined : body.stream_id
}

export function clientIdOf (body: { client_id: string | number }): string {
  return String(body.client_id)
}

const SECRET_NAME = /key|token|secret|sign|pass|auth|pwd|credential/i

/**
 * Masks the values of secret-looking query parameters (`?key=abc&vhost=x` -> `?key=***&vhost=x`)
 * and any userinfo, so `param` and `tcUrl` can be logged.
 */
export function redactQuery (value: string | undefined): string | undefined {
  if (value === undefined || value === '') return value
  // Nothing to mask without userinfo or a secret-looking name anywhere (SRS's usual `?vhost=...`):
  // the value as it is, which is what the rest would return, without splitting it.
  if (!value.includes('@') && !SECRET_NAME.test(value)) return value
  const out = value.replace(/\/\/[^/@?]*@/, '//***@')
  // `param` is usually `?a=b`; for WHIP it is the bare query; a tcUrl may carry one after `?`.
  const q = out.indexOf('?')
  const start = q !== -1 ? q + 1 : (out.includes('://') ? -1 : 0)
  if (start === -1) return out
  const query = out.slice(start).split('&').map((pair) => {
    const eq = pair.indexOf('=')
    if (eq === -1) return pair
    return SECRET_NAME.test(pair.slice(0, eq)) ? `${pair.slice(0, eq)}=***` : pair
  }).join('&')
  return out.slice(0, start) + query
}
