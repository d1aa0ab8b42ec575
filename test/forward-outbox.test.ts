import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Codes } from '../src/errors.js'
import { postHook, startApp, startWorld } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'

/**
 * Notifications forwarded through the outbox: answered at once, delivered at least once and in
 * order per stream across an outage and a restart, with an Idempotency-Key stable across retries;
 * a full outbox refuses clearly and /readyz says so long before.
 */

const stop = (client: string, stream: string) => ({ action: 'on_stop', client_id: client, vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })

t.test('an outage and a restart: every notification arrives, in order per stream, with the same Idempotency-Key on every attempt', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const dataDir = await mkdtemp(join(tmpdir(), 'srs-hooks-outbox-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env = { FORWARD_URL: platform.url, FORWARD_FAIL_MODE: 'open', FORWARD_TIMEOUT_MS: '300', FORWARD_RETRY_MAX_MS: '50', DATA_DIR: dataDir }
  const { sim, app } = await startWorld(t, env)
  // The platform fails every hook: decision hooks go by FORWARD_FAIL_MODE=open, notifications wait.
  platform.mode = { kind: 'status', status: 500 }
  const expected = new Map<string, string[]>()
  for (let cycle = 0; cycle < 3; cycle++) {
    for (const stream of ['cam1', 'cam2']) {
      const p = await sim.publish({ app: 'live', stream })
      t.ok(p.ok)
      await sim.stop(p.clientId)
      await sim.waitForHook((c) => c.hook === 'on_close' && c.clientId === p.clientId)
      expected.set(stream, [...(expected.get(stream) ?? []), `on_unpublish:${p.clientId}`])
    }
  }
  const unpublishes = sim.hookCalls.filter((c) => c.hook === 'on_unpublish')
  t.ok(unpublishes.length === 6 && unpublishes.every((c) => c.accepted), 'notifications are acknowledged while the platform fails')
  // Tried at least twice each before the restart, for some of them.
  await platform.waitFor((r) => r.filter((x) => x.action === 'on_unpublish').length >= 2)
  await app.close()
  const keysBefore = new Map<string, Set<string>>()
  for (const r of platform.of()) {
    if (r.headers['idempotency-key'] !== undefined) {
      const id = `${r.action}:${String(r.body.client_id)}`
      keysBefore.set(id, (keysBefore.get(id) ?? new Set()).add(String(r.headers['idempotency-key'])))
    }
  }
  const before = platform.received.length

  platform.mode = { kind: 'ok' }
  const again = await startApp(t, { SRS_API_URL: sim.apiUrl, ...env })
  t.ok(again.app.forward!.outbox.counts.rows > 0, 'the outbox kept what was acknowledged')
  await platform.waitFor(() => again.app.forward!.outbox.counts.rows === 0, 10_000, 'the backlog to drain')
  const after = platform.received.slice(before)
  for (const [stream, want] of expected) {
    const got = after.filter((r) => r.body.stream === stream && r.action === 'on_unpublish').map((r) => `${r.action}:${String(r.body.client_id)}`)
    t.same(got, want, `${stream}: each unpublish once after the restart, in SRS's order`)
  }
  for (const r of after) {
    const id = `${r.action}:${String(r.body.client_id)}`
    const seen = keysBefore.get(id)
    if (seen !== undefined) t.same([...seen], [String(r.headers['idempotency-key'])], `${id}: one key on every attempt, before and after the restart`)
  }
  const keys = after.map((r) => r.headers['idempotency-key'])
  t.equal(new Set(keys).size, keys.length, 'a different key per hook')
})

t.test('a full outbox: a clear 503, /readyz fails long before, nothing acknowledged is lost', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  await platform.down()
  const { hookBase, url, app } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url, FORWARD_OUTBOX_MAX: '10', FORWARD_RETRY_MAX_MS: '50' })
  const ready = async () => await (await fetch(`${url}/readyz`)).json() as Record<string, any>
  t.match(await ready(), { forward: { rows: 0, max: 10, msg: 'ok' } })
  for (let i = 0; i < 10; i++) {
    const r = await postHook(hookBase, 'on_stop', stop(`p${i}`, 'cam1'))
    t.equal(r.status, 200)
  }
  const full = await postHook(hookBase, 'on_stop', stop('p10', 'cam1'))
  t.equal(full.status, 503)
  t.equal(full.reply.code, Codes.FORWARD_NOT_QUEUED)
  t.match(full.reply.msg, /outbox is full \(FORWARD_OUTBOX_MAX=10\)/)
  const r = await ready()
  t.equal(r.ready, false)
  t.ok(r.failed.includes('forward'))
  t.match(r.forward, { depth: 10, rows: 10, msg: /holds 10 of FORWARD_OUTBOX_MAX=10/ })
  await platform.up()
  await platform.waitFor((all) => all.length === 10)
  t.same(platform.received.map((x) => x.body.client_id), Array.from({ length: 10 }, (_, i) => `p${i}`), 'every acknowledged one, in order')
  await platform.waitFor(() => app.forward!.outbox.counts.rows === 0, 5000, 'the outbox to empty')
  t.match(await ready(), { ready: true, forward: { rows: 0 } })
})

t.test('a notification older than FORWARD_MAX_AGE becomes a dead letter and the stream\'s next one goes on', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  platform.mode = { kind: 'status', status: 500 }
  const { hookBase, app, logs, url } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url, FORWARD_MAX_AGE: '1s', FORWARD_RETRY_MAX_MS: '100' })
  await postHook(hookBase, 'on_stop', stop('old', 'cam1'))
  await logs.wait((l) => /dead letter/.test(l.msg ?? ''), 10_000)
  t.equal(app.forward!.outbox.counts.dead, 1)
  platform.mode = { kind: 'ok' }
  await postHook(hookBase, 'on_stop', stop('new', 'cam1'))
  await platform.waitFor((all) => all.some((x) => x.body.client_id === 'new' && x.headers['idempotency-key'] !== undefined))
  const api = `${url}/admin-api/video/camera/forwarding`
  const status = await (await fetch(api)).json() as Record<string, any>
  t.match(status, { code: 0, dead: 1, targets: [{ target: 'srs', last_error: { action: 'on_stop', error: /HTTP 500/ } }] })
  const dead = await (await fetch(`${api}/dead`)).json() as Record<string, any>
  t.match(dead, { code: 0 })
  t.match(dead.items, [{ action: 'on_stop', lane: 'srs:/live/cam1', last_error: /older than FORWARD_MAX_AGE/ }])
  t.equal(JSON.parse(dead.items[0].body).client_id, 'old')
  const retried = await (await fetch(`${api}/dead/retry`, { method: 'POST' })).json() as Record<string, any>
  t.same(retried, { code: 0, retried: 1 })
  await platform.waitFor((all) => all.some((x) => x.body.client_id === 'old' && x.headers['idempotency-key'] === dead.items[0].idempotency_key), 5000, 'the retried dead letter')
  t.equal(app.forward!.outbox.counts.dead, 0)
})

t.test('an outbox that takes no write: the notification is answered 503 with why and /readyz fails with forward', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const { hookBase, url, app } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url })
  t.equal((await postHook(hookBase, 'on_stop', stop('before', 'cam1'))).status, 200)
  await platform.waitFor((all) => all.some((x) => x.body.client_id === 'before'))
  // Its database gone from under it (as a failed disk would leave it): every write fails.
  await app.forward!.outbox.close()
  const r = await postHook(hookBase, 'on_stop', stop('after', 'cam1'))
  t.equal(r.status, 503)
  t.equal(r.reply.code, Codes.FORWARD_NOT_QUEUED)
  t.match(r.reply.msg, /could not be written to the forwarding outbox/)
  const ready = await (await fetch(`${url}/readyz`)).json() as Record<string, any>
  t.equal(ready.ready, false)
  t.ok(ready.failed.includes('forward'))
  t.match(ready.forward, { msg: /the forwarding outbox takes no write/ })
  t.notOk(platform.received.some((x) => x.body.client_id === 'after'), 'what was not acknowledged is not delivered either')
})
