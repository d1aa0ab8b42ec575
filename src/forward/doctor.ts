import { randomBytes } from 'node:crypto'
import type { Config } from '../config.js'
import type { Say } from '../zlm/doctor.js'
import { PlatformClient, type Target } from './client.js'
import { headersOf } from './settings.js'
import { verdictOf } from './verdict.js'

/**
 * `srs-hooks doctor`'s check of the platform's callback (FORWARD_URL, FORWARD_ZLM_URL): it is
 * reachable and gives a verdict. The probe is a decision hook (SRS's on_connect, ZLMediaKit's
 * on_play) for an app and stream of its own, so that no camera's state changes on the platform:
 * an allow or a refusal both prove the platform answers; no verdict fails.
 */

export async function checkForward (config: Config, say: Say): Promise<void> {
  const targets: Array<[Target, string | undefined]> = [['srs', config.FORWARD_URL], ['zlm', config.FORWARD_ZLM_URL]]
  for (const [target, url] of targets) {
    if (url === undefined) continue
    const client = new PlatformClient({ url, headers: headersOf(config.FORWARD_HEADERS)!, connections: 1 })
    const name = target === 'srs' ? 'FORWARD_URL' : 'FORWARD_ZLM_URL'
    const action = target === 'srs' ? 'on_connect' : 'on_play'
    const stream = `probe-${randomBytes(4).toString('hex')}`
    const body = target === 'srs'
      ? { action, client_id: 'doctor00', ip: '127.0.0.1', vhost: '__defaultVhost__', app: 'srs-hooks-doctor', tcUrl: 'rtmp://127.0.0.1:1935/srs-hooks-doctor', stream, param: '', stream_url: `/srs-hooks-doctor/${stream}` }
      : { mediaServerId: 'srs-hooks-doctor', id: 'doctor00', ip: '127.0.0.1', port: 0, schema: 'rtmp', vhost: '__defaultVhost__', app: 'srs-hooks-doctor', stream, params: '' }
    say.step(`sending a test ${action} to the platform at ${client.where} (${name})`)
    try {
      const answer = await client.post(action, JSON.stringify(body), config.FORWARD_TIMEOUT_MS)
      const v = verdictOf(target, answer)
      const took = `${Math.round(answer.ms)} ms`
      if (v.kind === 'allow') say.ok(`the platform answers at ${client.where}: a test ${action} was allowed in ${took}`)
      else if (v.kind === 'refuse') say.ok(`the platform answers at ${client.where}: a test ${action} was refused (${v.msg}) in ${took}; it gives verdicts`)
      else {
        say.fail(`the platform at ${client.where} (${name}) gave no verdict to a test ${action}: ${v.msg}`,
          `start the platform and check ${name}, FORWARD_HEADERS and FORWARD_TIMEOUT_MS=${config.FORWARD_TIMEOUT_MS}; until it answers, decision hooks follow FORWARD_FAIL_MODE=${config.FORWARD_FAIL_MODE} and notifications wait in the outbox`)
      }
    } finally {
      await client.close()
    }
  }
}
