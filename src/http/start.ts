import type { FastifyInstance } from 'fastify'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Runs `work` once the server is serving (see backgroundStart), or at once if it already is.
     * For what a start does that no hook needs in order to be answered.
     */
    afterStart: (work: () => void) => void
  }
}

/**
 * A start's background work (the SRS version probe, the first reconciliation, opening the
 * recordings index) waits until the server listens and has answered its first request, or
 * `graceMs` after it listens if no request comes first. A restarted srs-hooks is sent hooks at once
 * (SRS retries its clients' connections): it answers them first, then does the rest. No hook needs
 * any of that work to be answered: until SRS's version is known both hooks act safely, the
 * publisher table is filled by the hooks themselves, and an on_dvr waits for the index to open.
 * Work is never started once the app is closing; an app that never listens (inject) never starts it.
 */
export function backgroundStart (app: FastifyInstance, graceMs: number): void {
  const works: Array<() => void> = []
  let state: 'waiting' | 'started' | 'closed' = 'waiting'
  let timer: NodeJS.Timeout | undefined
  const start = (): void => {
    clearTimeout(timer)
    if (state !== 'waiting') return
    state = 'started'
    for (const work of works.splice(0)) work()
  }
  app.decorate('afterStart', (work: () => void) => {
    if (state === 'started') work()
    else if (state === 'waiting') works.push(work)
  })
  app.addHook('onListen', async () => {
    timer = setTimeout(start, graceMs)
    // After the first answer has been written (or its connection lost), in the next turn.
    app.server.once('request', (_req, res) => { res.once('close', () => setImmediate(start)) })
  })
  app.addHook('preClose', async () => {
    clearTimeout(timer)
    if (state === 'waiting') state = 'closed'
  })
}
