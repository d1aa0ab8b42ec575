import { request } from 'undici'
import type { Config } from '../config.js'
import { probeBudget } from '../publishers/probe.js'
import { ZLM_STATS_INTERVAL_MS } from './adapter.js'
import { ZlmApi, type ZlmApiError } from './api.js'
import { ZLM_HOOKS } from './hooks.js'
import { DEFAULT_HOOK_TIMEOUT_S, hookBudgetOf } from './servers.js'

/**
 * `srs-hooks doctor`'s checks of each ZLMediaKit (ZLM_API_URL): its API with the secret, the
 * `[hook]` section it runs with (as getServerConfig reports it), and this server at the hook URL
 * it calls.
 */

export interface Say {
  ok: (what: string) => void
  warn: (what: string, fix: string) => void
  fail: (what: string, fix: string) => void
  step: (what: string) => void
}

const PROBE_TIMEOUT_MS = 10_000

export async function checkZlm (config: Config, say: Say): Promise<void> {
  for (const url of config.zlmApis) {
    if (config.ZLM_SECRET === undefined) {
      say.warn(`ZLMediaKit at ${url}: ZLM_SECRET is unset; srs-hooks learns the secret from its on_server_started, but doctor cannot call its API`,
        'set ZLM_SECRET to ZLMediaKit\'s api.secret (config.ini [api] secret) to check it from here')
      continue
    }
    const api = new ZlmApi({ url, secret: () => config.ZLM_SECRET, timeoutMs: config.ZLM_API_TIMEOUT_MS, retries: 0 })
    say.step(`calling ZLMediaKit's HTTP API at ${url}`)
    try {
      const c = await api.serverConfig()
      say.ok(`ZLMediaKit's API answers at ${url} (mediaServerId ${c['general.mediaServerId'] ?? '?'})`)
      await checkHooks(c, config, say)
    } catch (err) {
      const e = err as ZlmApiError
      say.fail(`ZLMediaKit's API at ${url}: ${e.message}`, e.kind === 'unauthorized'
        ? 'set ZLM_SECRET to ZLMediaKit\'s api.secret, and list this host in its http.allow_ip_range'
        : 'start ZLMediaKit and point ZLM_API_URL at its HTTP port (config.ini [http] port)')
    } finally {
      await api.close()
    }
  }
}

async function checkHooks (c: Record<string, string>, config: Config, say: Say): Promise<void> {
  const id = c['general.mediaServerId'] ?? '?'
  if (c['hook.enable'] !== '1') {
    say.fail(`ZLMediaKit ${id} calls no hook ([hook] enable=0): nobody evicts a stale publisher`, 'set `enable=1` in config.ini [hook] (see zlm.config.example)')
    return
  }
  const hookUrl = (hook: string): string => c[`hook.${hook}`] ?? ''
  for (const hook of ZLM_HOOKS) {
    const u = hookUrl(hook)
    if (u === '') continue
    let path: string
    try {
      path = new URL(u).pathname
    } catch {
      say.fail(`ZLMediaKit ${id}: hook.${hook} ${redact(u)} is not a valid URL`, 'replace placeholders such as <srs-hooks> with an address ZLMediaKit can reach')
      continue
    }
    if (!path.endsWith(`/callback/zlm/${hook}`)) {
      say.fail(`ZLMediaKit ${id}: hook.${hook} points at ${redact(u)}, not at srs-hooks's ${hook}`, `use .../admin-api/video/camera/callback/zlm/${hook} (or /video/camera/callback/zlm/${hook} behind a gateway that strips /admin-api)`)
    }
  }
  if (hookUrl('on_publish') === '') {
    say.fail(`ZLMediaKit ${id} has no on_publish hook: nobody evicts a stale publisher`, 'set `on_publish=http://<srs-hooks>:6000/admin-api/video/camera/callback/zlm/on_publish` in [hook]')
  } else {
    say.ok(`ZLMediaKit ${id} calls on_publish`)
  }
  if (hookUrl('on_stream_changed') === '') {
    say.warn(`ZLMediaKit ${id} has no on_stream_changed hook: a takeover sees the release only by polling ZLMediaKit's API`, 'set `on_stream_changed=.../callback/zlm/on_stream_changed` in [hook]')
  }
  if (c['protocol.enable_mp4'] === '1' && hookUrl('on_record_mp4') === '') {
    say.warn(`ZLMediaKit ${id} records MP4 (protocol.enable_mp4=1) but has no on_record_mp4 hook: recordings are not indexed`, 'set `on_record_mp4=.../callback/zlm/on_record_mp4` in [hook]')
  }
  if (hookUrl('on_rtp_server_timeout') === '') {
    say.warn(`ZLMediaKit ${id} has no on_rtp_server_timeout hook: kept RTP servers are reopened only at the next reconciliation`, 'set `on_rtp_server_timeout=.../callback/zlm/on_rtp_server_timeout` in [hook]')
  }
  const timeoutS = Number(c['hook.timeoutSec'] ?? DEFAULT_HOOK_TIMEOUT_S)
  const needs = config.TAKEOVER_TIMEOUT_MS + (config.TAKEOVER_POLICY === 'takeover-stale' ? config.STALE_PROBE_MS ?? probeBudget(ZLM_STATS_INTERVAL_MS) : 0)
  if (needs > hookBudgetOf(timeoutS * 1000)) {
    say.warn(`ZLMediaKit ${id} waits ${timeoutS} s for a hook (hook.timeoutSec) but a takeover may take ${needs} ms: takeovers are cut short there`, `raise hook.timeoutSec to ${Math.ceil(needs / 1000) + 1}, or lower TAKEOVER_TIMEOUT_MS`)
  } else {
    say.ok(`ZLMediaKit ${id} waits ${timeoutS} s for a hook, enough for a takeover (${needs} ms)`)
  }
  const onPublish = hookUrl('on_publish')
  if (onPublish !== '') await probe(onPublish.replace(/on_publish(?=$|\?)/, 'on_server_keepalive'), say)
}

/** Posts a harmless on_server_keepalive to the hook URL ZLMediaKit uses. */
async function probe (target: string, say: Say): Promise<void> {
  say.step(`sending a test on_server_keepalive to ${redact(target)}`)
  try {
    // undici's request, not fetch: fetch refuses some ports (6000, our default, among them).
    const res = await request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'srs-hooks doctor' },
      body: JSON.stringify({ mediaServerId: 'srs-hooks-doctor', hook_index: 0, data: {} }),
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS)
    })
    const text = await res.body.text()
    let code: unknown
    try { code = (JSON.parse(text) as { code?: unknown }).code } catch {}
    if (res.statusCode === 200 && code === 0) say.ok(`srs-hooks answers at ${redact(target)}`)
    else say.fail(`a test hook to ${redact(target)} got HTTP ${res.statusCode}: ${text.slice(0, 200)}`, res.statusCode === 403 ? 'the hook URLs need the right ?token= (HOOK_TOKEN)' : 'the hook URLs must point at srs-hooks\'s /callback/zlm/ routes')
  } catch (err) {
    say.fail(`cannot reach ${redact(target)} from here: ${(err as Error).message}`, 'start srs-hooks and make sure ZLMediaKit can reach this address (from inside a container 127.0.0.1 is the container itself)')
  }
}

/** A URL with its token values masked. */
function redact (url: string): string {
  return url.replace(/([?&][^=&]*(?:token|key|secret|sign|pass|auth)[^=&]*=)[^&]*/gi, '$1***')
}
