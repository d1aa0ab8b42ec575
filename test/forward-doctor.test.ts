import t from 'tap'
import { doctor } from '../src/cli/doctor.js'
import { PlatformServer } from './fixtures/platform.js'

/** `srs-hooks doctor` checks the platform's callback (FORWARD_URL, FORWARD_ZLM_URL): reachable, and giving verdicts. */

async function run (env: Record<string, string>) {
  const out: string[] = []
  const err: string[] = []
  const code = await doctor([], { out: (l) => out.push(l), err: (l) => err.push(l), env: { SRS_API_URL: 'none', FORWARD_TIMEOUT_MS: '500', ...env } })
  return { code, out: out.join('\n') }
}

t.test('a platform that answers: OK for each target, with its headers, an allow or a refusal alike', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const r = await run({ FORWARD_URL: platform.url, FORWARD_ZLM_URL: platform.url, FORWARD_HEADERS: 'Authorization: Bearer platform-secret' })
  t.equal(r.code, 0, r.out)
  t.match(r.out, /\.\.\. {3}sending a test on_connect to the platform at http:\/\/127\.0\.0\.1:\d+\/callback\/\{action\} \(FORWARD_URL\)/)
  t.match(r.out, /OK {4}the platform answers at .*: a test on_connect was allowed in \d+ ms/)
  t.match(r.out, /OK {4}the platform answers at .*: a test on_play was allowed in \d+ ms/)
  t.same(platform.received.map((x) => x.action), ['on_connect', 'on_play'])
  t.ok(platform.received.every((x) => x.headers.authorization === 'Bearer platform-secret'))
  t.notOk(r.out.includes('platform-secret'), 'the headers are never printed')
  t.ok(platform.received.every((x) => x.body.app === 'srs-hooks-doctor'), 'an app of its own: no camera\'s state changes')

  platform.mode = { kind: 'status', status: 403 }
  const refused = await run({ FORWARD_URL: platform.url })
  t.equal(refused.code, 0, refused.out)
  t.match(refused.out, /OK {4}the platform answers at .*: a test on_connect was refused \(HTTP 403.*\) in \d+ ms; it gives verdicts/)
})

t.test('a platform that gives no verdict: FAIL with what it did and the fix', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  platform.mode = { kind: 'status', status: 502 }
  const bad = await run({ FORWARD_URL: platform.url })
  t.equal(bad.code, 1)
  t.match(bad.out, /FAIL {2}the platform at .* \(FORWARD_URL\) gave no verdict to a test on_connect: the platform answered HTTP 502/)
  t.match(bad.out, /fix: start the platform and check FORWARD_URL, FORWARD_HEADERS and FORWARD_TIMEOUT_MS=500; until it answers, decision hooks follow FORWARD_FAIL_MODE=closed/)

  platform.mode = { kind: 'slow', ms: 20_000 }
  const slow = await run({ FORWARD_ZLM_URL: platform.url })
  t.equal(slow.code, 1)
  t.match(slow.out, /FAIL {2}.*\(FORWARD_ZLM_URL\) gave no verdict to a test on_play: the platform gave no answer: no answer within 500 ms/)

  await platform.down()
  const down = await run({ FORWARD_URL: platform.url })
  t.equal(down.code, 1)
  t.match(down.out, /FAIL {2}.*gave no verdict to a test on_connect: the platform is unreachable: ECONNREFUSED/)
})
