/**
 * The operator console. Every URL is relative to the page (console/ under the operator API's
 * prefix). Data from the network is only ever set as textContent, never parsed as HTML.
 * With ADMIN_TOKEN set the token is asked for and kept in sessionStorage (this tab only); the
 * events stream is read with fetch, which can send it as a bearer token (EventSource cannot).
 */

const TOKEN_KEY = 'srs-hooks-admin-token'
const ROW = 28
const POLL_MS = 5000
const EVENTS_SHOWN = 200

interface Publisher { client_id: string, ip: string | null, since: number | null }
interface Stream { server: string, stream_url: string, vhost: string, app: string, stream: string, publisher: Publisher | null, recv_bytes: number | null, active: boolean | null }
interface Server { server: string, kind: string, api: string, ok: boolean, msg: string | null, version: string | null, strategy: string }

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T

function el (tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag)
  if (text !== undefined) e.textContent = text
  if (cls !== undefined) e.className = cls
  return e
}

let token = sessionStorage.getItem(TOKEN_KEY) ?? ''

function headers (): Record<string, string> {
  return token === '' ? {} : { authorization: `Bearer ${token}` }
}

class Unauthorized extends Error {}

async function api (path: string, init: RequestInit = {}): Promise<any> {
  const res = await fetch(path, { ...init, headers: { ...headers(), ...(init.headers as Record<string, string> | undefined) } })
  if (res.status === 401) throw new Unauthorized('wrong or missing token')
  const body = await res.json()
  if (!res.ok) throw new Error(String(body.msg ?? res.status))
  return body
}

function say (text: string): void {
  $('state').textContent = text
}

// ---- login ----

function askToken (why: string): void {
  $('main').hidden = true
  $('login').hidden = false
  $('login-error').textContent = why
  $('token').focus()
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault()
  token = $<HTMLInputElement>('token').value.trim()
  sessionStorage.setItem(TOKEN_KEY, token)
  void start()
})

// ---- servers ----

async function refreshServers (servers: Server[]): Promise<void> {
  const list = $('servers')
  const items: HTMLElement[] = servers.map((s) => {
    const li = el('li', `${s.kind === 'zlm' ? 'ZLMediaKit' : 'SRS'} ${s.server} ${s.version ?? ''} · ${s.api} · takeover at ${s.strategy} · ${s.ok ? 'up' : 'down'}`, s.ok ? 'up' : 'down')
    if (s.msg !== null) li.title = s.msg
    return li
  })
  try {
    const st = await api('status')
    if (st.redis !== null) items.push(el('li', `Redis · ${st.redis.ok ? 'up' : 'down'} · ${st.redis.msg ?? ''}`, st.redis.ok ? 'up' : 'down'))
    const db = st.database
    items.push(el('li', `${db.kind === 'postgresql' ? 'PostgreSQL' : 'SQLite'} recordings · ${db.ok ? 'up' : 'down'}${db.spooled !== null ? ` · ${db.spooled as number} spooled` : ''}${db.msg !== null ? ` · ${db.msg as string}` : ''}`, db.ok ? 'up' : 'down'))
  } catch (err) {
    if (err instanceof Unauthorized) throw err
  }
  list.replaceChildren(...items)
}

// ---- live streams (virtualised) ----

let streams: Stream[] = []
let shown: Stream[] = []
const lastBytes = new Map<string, { bytes: number, at: number, kbps: number | null }>()

function label (s: Stream): string {
  return s.vhost === '__defaultVhost__' ? `${s.app}/${s.stream}` : `${s.vhost}/${s.app}/${s.stream}`
}

function applyFilter (): void {
  const q = $<HTMLInputElement>('filter').value.trim().toLowerCase()
  shown = q === '' ? streams : streams.filter((s) => label(s).toLowerCase().includes(q) || (s.publisher?.client_id ?? '').toLowerCase().includes(q))
  $('stream-count').textContent = `(${shown.length}${shown.length !== streams.length ? ` of ${streams.length}` : ''})`
  $('spacer').style.height = `${shown.length * ROW}px`
  render()
}

function render (): void {
  const box = $('streams')
  const first = Math.max(0, Math.floor(box.scrollTop / ROW) - 5)
  const last = Math.min(shown.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW) + 5)
  const rows: HTMLElement[] = [$('spacer')]
  for (let i = first; i < last; i++) rows.push(row(shown[i]!, i))
  box.replaceChildren(...rows)
}

function row (s: Stream, i: number): HTMLElement {
  const r = el('div', undefined, 'row')
  r.setAttribute('role', 'row')
  r.style.top = `${i * ROW}px`
  const p = s.publisher
  const rate = lastBytes.get(`${s.server} ${s.stream_url}`)?.kbps
  for (const text of [label(s), p?.client_id ?? '', p?.ip ?? '', p?.since != null ? new Date(p.since).toLocaleTimeString() : '', rate != null ? `${rate} kbit/s` : '', s.server]) {
    const c = el('span', text)
    c.setAttribute('role', 'cell')
    c.title = text
    r.append(c)
  }
  const kick = el('button', 'Kick') as HTMLButtonElement
  kick.type = 'button'
  kick.setAttribute('aria-label', `Kick ${label(s)}`)
  kick.disabled = p === null
  kick.addEventListener('click', () => { confirmKick(s) })
  const c = el('span')
  c.setAttribute('role', 'cell')
  c.append(kick)
  r.append(c)
  return r
}

let scheduled = false
$('streams').addEventListener('scroll', () => {
  if (scheduled) return
  scheduled = true
  requestAnimationFrame(() => { scheduled = false; render() })
})
$('filter').addEventListener('input', applyFilter)

async function refreshStreams (): Promise<void> {
  const body = await api('../streams')
  const now = Date.now()
  streams = (body.streams as Stream[]).filter((s) => s.publisher !== null || s.active === true)
  for (const s of streams) {
    const key = `${s.server} ${s.stream_url}`
    const prev = lastBytes.get(key)
    if (s.recv_bytes === null) continue
    const kbps = prev !== undefined && now > prev.at && s.recv_bytes >= prev.bytes ? Math.round((s.recv_bytes - prev.bytes) * 8 / (now - prev.at)) : prev?.kbps ?? null
    lastBytes.set(key, { bytes: s.recv_bytes, at: now, kbps })
  }
  applyFilter()
  await refreshServers(body.servers as Server[])
}

// ---- kick ----

function confirmKick (s: Stream): void {
  const dialog = $<HTMLDialogElement>('confirm')
  $('confirm-text').textContent = `Evict the publisher of ${label(s)} (client ${s.publisher?.client_id ?? '?'}) on ${s.server}?`
  const yes = $('confirm-yes')
  const no = $('confirm-no')
  const done = (): void => {
    yes.removeEventListener('click', onYes)
    no.removeEventListener('click', onNo)
    dialog.close()
  }
  const onNo = (): void => { done() }
  const onYes = (): void => {
    done()
    const q = new URLSearchParams({ server: s.server })
    if (s.vhost !== '__defaultVhost__') q.set('vhost', s.vhost)
    api(`../streams/${encodeURIComponent(s.app)}/${encodeURIComponent(s.stream)}/publisher?${q.toString()}`, { method: 'DELETE' })
      .then(() => { say(`kicked ${label(s)}`); return refreshStreams() })
      .catch((err: Error) => { say(`kick of ${label(s)} failed: ${err.message}`) })
  }
  yes.addEventListener('click', onYes)
  no.addEventListener('click', onNo)
  dialog.showModal()
}

// ---- events (fetch-read server-sent events, resumed with Last-Event-ID) ----

let lastEventId = ''

function describe (type: string, e: Record<string, any>): string {
  switch (type) {
    case 'takeover':
    case 'takeover-timeout':
      return `${e.stream as string} on ${e.server as string}: ${e.incumbent as string} → ${e.newcomer as string}${e.ip != null ? ` (${e.ip as string})` : ''}, policy ${e.policy as string}, released in ${Math.round(e.waitMs)} ms via ${e.via as string}`
    case 'refusal':
      return `${e.stream as string} on ${e.server as string}: ${e.reason === 'flapping' ? 'flap-guard hold' : 'refused'} ${e.client as string} (${e.reason as string}): ${e.msg as string}`
    case 'eviction':
      return `${e.stream as string} on ${e.server as string}: operator evicted ${e.clientId as string}, released in ${Math.round(e.waitMs)} ms via ${e.via as string}`
    case 'server-down':
    case 'server-up':
      return `${e.kind === 'srs' ? 'SRS' : 'server'} ${e.server as string} (${e.api as string}) is ${type === 'server-up' ? 'up' : 'down'}`
    case 'redis-down':
    case 'redis-up':
      return `Redis ${type === 'redis-up' ? 'up' : 'down'}: ${e.msg as string}`
    case 'gap':
      return 'some events were missed while disconnected'
    default:
      return JSON.stringify(e)
  }
}

function addEvent (type: string, data: string): void {
  let e: Record<string, any> = {}
  try { e = JSON.parse(data) } catch {}
  const at = typeof e.at === 'number' ? new Date(e.at).toLocaleTimeString() : new Date().toLocaleTimeString()
  const li = el('li', `${at} ${type} ${describe(type, e)}`, `t-${type}`)
  const list = $('events')
  list.prepend(li)
  while (list.childElementCount > EVENTS_SHOWN) list.lastElementChild!.remove()
}

async function listen (): Promise<void> {
  for (;;) {
    try {
      const h: Record<string, string> = headers()
      if (lastEventId !== '') h['last-event-id'] = lastEventId
      const res = await fetch(lastEventId === '' ? '../events/stream?last=50' : '../events/stream', { headers: h })
      if (res.status === 401) { askToken('wrong token'); return }
      if (!res.ok || res.body === null) throw new Error(`events stream: HTTP ${res.status}`)
      say('live')
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let end
        while ((end = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          let type = 'message'
          let data = ''
          let id: string | undefined
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) type = line.slice(7)
            else if (line.startsWith('data: ')) data += line.slice(6)
            else if (line.startsWith('id: ')) id = line.slice(4)
          }
          if (id !== undefined) lastEventId = id
          if (data !== '') addEvent(type, data)
        }
      }
    } catch {}
    say('reconnecting…')
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

// ---- recordings (the operator API's cursor paging) ----

const cursors: string[] = []
let nextCursor: string | null = null

async function loadRecordings (cursor: string | null): Promise<void> {
  const q = new URLSearchParams({ limit: '20' })
  for (const [id, name] of [['rec-app', 'app'], ['rec-stream', 'stream']] as const) {
    const v = $<HTMLInputElement>(id).value.trim()
    if (v !== '') q.set(name, v)
  }
  for (const [id, name] of [['rec-from', 'from'], ['rec-to', 'to']] as const) {
    const v = $<HTMLInputElement>(id).value
    if (v !== '') q.set(name, String(new Date(v).getTime()))
  }
  if (cursor !== null) q.set('cursor', cursor)
  const body = await api(`../recordings?${q.toString()}`)
  nextCursor = body.next_cursor
  $<HTMLButtonElement>('rec-next').disabled = nextCursor === null
  $('recordings').replaceChildren(...(body.items as Array<Record<string, any>>).map((r) => {
    const tr = el('tr')
    for (const text of [r.stream_url, r.file, new Date(r.ended_at).toLocaleString(), r.duration_ms != null ? `${Math.round(r.duration_ms / 1000)} s` : '', r.size != null ? `${Math.round(r.size / 1024)} KiB` : '']) tr.append(el('td', String(text)))
    return tr
  }))
}

$('rec-filter').addEventListener('submit', (ev) => { ev.preventDefault(); cursors.length = 0; void loadRecordings(null) })
$('rec-first').addEventListener('click', () => { cursors.length = 0; void loadRecordings(null) })
$('rec-next').addEventListener('click', () => { if (nextCursor !== null) { cursors.push(nextCursor); void loadRecordings(nextCursor) } })

// ---- start ----

let polling = false

async function start (): Promise<void> {
  try {
    await refreshStreams()
  } catch (err) {
    if (err instanceof Unauthorized) {
      sessionStorage.removeItem(TOKEN_KEY)
      askToken(token === '' ? 'this server needs its operator token' : 'wrong token')
      return
    }
    say(`cannot read the streams: ${(err as Error).message}`)
  }
  $('login').hidden = true
  $('main').hidden = false
  applyFilter()
  void loadRecordings(null).catch(() => {})
  void listen()
  if (!polling) {
    polling = true
    setInterval(() => { void refreshStreams().catch(() => {}) }, POLL_MS)
  }
}

void start()
export {}
