import { Type, type Static, type TSchema } from 'typebox'
import { FieldBounds } from '../streams.js'

/**
 * What ZLMediaKit POSTs to each hook (docs/zlm-protocol.md section 1, server/WebHook.cpp) and what we
 * answer. Every body carries mediaServerId and hook_index; extra fields are allowed (ZLMediaKit
 * adds some across versions, and on_server_started carries every configuration key); present
 * fields must have the right type.
 */

export const ZLM_HOOKS = [
  'on_publish', 'on_play', 'on_flow_report', 'on_rtsp_realm', 'on_rtsp_auth', 'on_stream_changed',
  'on_stream_not_found', 'on_record_mp4', 'on_record_ts', 'on_shell_login', 'on_stream_none_reader',
  'on_http_access', 'on_server_started', 'on_server_exited', 'on_server_keepalive', 'on_send_rtp_stopped',
  'on_rtp_server_timeout'
] as const
export type ZlmHook = typeof ZLM_HOOKS[number]

/** The same bounds as SRS's hooks (srs/hooks.ts: FieldBounds). */
const Name = Type.String({ maxLength: FieldBounds.name })
const Free = Type.String({ maxLength: FieldBounds.url })
const Port = Type.Integer({ minimum: 0, maximum: 65535 })

const Common = {
  mediaServerId: Type.String({ minLength: 1, maxLength: FieldBounds.id }),
  hook_index: Type.Optional(Type.Integer({ minimum: 0 }))
}

/** vhost, app and stream: a hook about a stream. */
const StreamFields = {
  vhost: Type.String({ minLength: 1, maxLength: FieldBounds.host }),
  app: Type.String({ minLength: 1, maxLength: FieldBounds.name }),
  stream: Type.String({ minLength: 1, maxLength: FieldBounds.name }),
  params: Type.Optional(Free),
  schema: Type.Optional(Name)
}

/** A client's session: its id and address. */
const ClientFields = {
  id: Type.String({ minLength: 1, maxLength: 128 }),
  ip: Type.Optional(Type.String({ maxLength: 64 })),
  port: Type.Optional(Port),
  protocol: Type.Optional(Name)
}

const hookBody = <P extends Record<string, TSchema>>(props: P) =>
  Type.Object({ ...Common, ...props }, { additionalProperties: true })

export const OnPublishBody = hookBody({
  ...StreamFields,
  ...ClientFields,
  originType: Type.Optional(Type.Integer()),
  originTypeStr: Type.Optional(Name)
})
export const OnPlayBody = hookBody({ ...StreamFields, ...ClientFields })
export const OnStreamChangedBody = hookBody({
  ...StreamFields,
  regist: Type.Boolean(),
  originTypeStr: Type.Optional(Name),
  originSock: Type.Optional(Type.Union([Type.Null(), Type.Object({ identifier: Type.Optional(Name) }, { additionalProperties: true })]))
})
export const OnFlowReportBody = hookBody({
  ...StreamFields,
  ...ClientFields,
  player: Type.Optional(Type.Boolean()),
  totalBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  duration: Type.Optional(Type.Integer({ minimum: 0 }))
})
export const OnRecordMp4Body = hookBody({
  ...StreamFields,
  start_time: Type.Optional(Type.Integer({ minimum: 0 })),
  file_size: Type.Optional(Type.Integer({ minimum: 0 })),
  time_len: Type.Optional(Type.Number({ minimum: 0 })),
  file_path: Type.String({ minLength: 1, maxLength: FieldBounds.path }),
  file_name: Type.Optional(Free),
  folder: Type.Optional(Free),
  url: Type.Optional(Free)
})
export const OnRtpServerTimeoutBody = hookBody({
  vhost: Type.Optional(Name),
  app: Type.Optional(Name),
  stream_id: Type.String({ minLength: 1, maxLength: FieldBounds.name }),
  local_port: Type.Optional(Port),
  tcp_mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 })),
  re_use_port: Type.Optional(Type.Boolean()),
  ssrc: Type.Optional(Type.Integer({ minimum: 0, maximum: 4_294_967_295 }))
})
/** Every configuration key as a string; we read a few. */
export const OnServerStartedBody = hookBody({
  'api.secret': Type.Optional(Type.String({ maxLength: 1024 })),
  'hook.timeoutSec': Type.Optional(Name)
})
/** Stream hooks that only notify (on_stream_none_reader, on_stream_not_found, on_record_ts...): the stream's names if any. */
export const StreamNoticeBody = hookBody({
  vhost: Type.Optional(Name),
  app: Type.Optional(Name),
  stream: Type.Optional(Name),
  params: Type.Optional(Free),
  schema: Type.Optional(Name)
})
/** Every other hook: ZLMediaKit's common fields. */
export const AnyHookBody = hookBody({})

export type OnPublish = Static<typeof OnPublishBody>
export type OnPlay = Static<typeof OnPlayBody>
export type OnStreamChanged = Static<typeof OnStreamChangedBody>
export type OnFlowReport = Static<typeof OnFlowReportBody>
export type OnRecordMp4 = Static<typeof OnRecordMp4Body>
export type OnRtpServerTimeout = Static<typeof OnRtpServerTimeoutBody>
export type OnServerStarted = Static<typeof OnServerStartedBody>
export type StreamNotice = Static<typeof StreamNoticeBody>

/**
 * Our answer. ZLMediaKit accepts HTTP 200 with an integer `code` 0; any other integer refuses (and
 * is not retried). Some hooks read more members (close, realm, err...).
 */
export const ZlmReply = Type.Object({
  code: Type.Integer(),
  msg: Type.Union([Type.String(), Type.Null()])
}, { additionalProperties: false })
export type ZlmReply = Static<typeof ZlmReply>

export const ZLM_ALLOW: ZlmReply = Object.freeze({ code: 0, msg: null })
