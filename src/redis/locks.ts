import { randomUUID } from 'node:crypto'
import { MemoryLocks, type Locks, type Unlock } from '../publishers/lock.js'
import type { Log } from '../logger.js'
import type { RedisLink } from './link.js'

/**
 * The per-stream lock shared by the replicas. A caller first takes this replica's own lock (the
 * local twin), so that waiters in one replica queue in process, in order, and only the one at the
 * head talks to Redis; then the Redis lock:
 *
 *   {prefix}lock:K        string  the holder's random token, PX the lease   (SET NX PX)
 *   {prefix}lock-wait:K   string  "someone waits", PX the longest wait      (so a release says so)
 *   channel {prefix}locks         a release, when someone waits: the lock's key
 *
 * Taking it is one script (one round trip): SET NX PX, or, if another replica holds it, mark that
 * someone waits and return the time left on the holder's lease. The waiter then sleeps until a
 * release notice, the holder's lease end, or a short poll (doubling from `pollMs` to `maxPollMs`),
 * and tries again, never past `waitMs`. Letting go is one script that deletes the key only if it
 * still holds this holder's token, so one replica can never release another's lock, and publishes
 * the notice only if someone waits. A holder that died never lets go: its lease does.
 *
 * When Redis cannot be reached at all (its connection refused or closed), the caller proceeds
 * with the local lock alone: the degraded mode, logged once per outage and counted at every use
 * (redis_degraded_total{op="lock"}); the replicas degrade to one lock each, never to a deadlock.
 * A try that timed out or failed while the connection is open (a slow or hung Redis) does not
 * hold the lock: acquire() resolves with null, and nothing is done under it. Such a try may have
 * taken the Redis lock: its release is sent at once, or, if Redis is down then, when it returns
 * (unless the lease has lapsed by then).
 */

export interface RedisLocksOptions {
  link: RedisLink
  /** The local twin (a MemoryLocks unless given). */
  local?: Locks
  /** First pause between two tries while another replica holds the lock (ms). */
  pollMs?: number
  /** Longest pause between two tries (ms). */
  maxPollMs?: number
  log?: Log
}

/** KEYS: lock, waiting flag. ARGV: token, lease ms, wait left ms. -1: taken; else the holder's time left. */
const ACQUIRE = `
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
if redis.call('pttl', KEYS[2]) < tonumber(ARGV[3]) then redis.call('set', KEYS[2], '1', 'PX', ARGV[3]) end
local left = redis.call('pttl', KEYS[1])
if left < 0 then return 0 end
return left
`

/** KEYS: lock, waiting flag. ARGV: token, channel, message. 1: released; 0: not (or no longer) ours. */
const RELEASE = `
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
if redis.call('del', KEYS[2]) == 1 then redis.call('publish', ARGV[2], ARGV[3]) end
return 1
`

interface Hold { lockKey: string, waitKey: string, token: string, /** performance.now() when the lease ends */ until: number }

export class RedisLocks implements Locks {
  readonly #link: RedisLink
  readonly #local: Locks
  readonly #pollMs: number
  readonly #maxPollMs: number
  readonly #acquire
  readonly #release
  readonly #channel: string
  /** Waiters for another replica's lock, by lock key: woken by a release notice. */
  readonly #waiters = new Map<string, Set<() => void>>()
  /** Releases that could not be sent (Redis down): sent when it returns, if their lease is still on. */
  readonly #unsent = new Map<string, Hold>()
  readonly #log: Log | undefined
  #degradedLogged = false

  constructor (opts: RedisLocksOptions) {
    this.#link = opts.link
    this.#local = opts.local ?? new MemoryLocks()
    this.#pollMs = opts.pollMs ?? 5
    this.#maxPollMs = opts.maxPollMs ?? 50
    this.#acquire = opts.link.script('lockAcquire', 2, ACQUIRE)
    this.#release = opts.link.script('lockRelease', 2, RELEASE)
    this.#channel = opts.link.channel('locks')
    opts.link.subscribe('locks', (lockKey) => {
      for (const wake of this.#waiters.get(lockKey) ?? []) wake()
    })
    this.#log = opts.log
    opts.link.onRecovered(() => {
      this.#degradedLogged = false
      const unsent = [...this.#unsent.values()]
      this.#unsent.clear()
      for (const hold of unsent) if (hold.until > performance.now()) void this.#letGo(hold)
    })
  }

  async acquire (key: string, waitMs: number, leaseMs: number): Promise<Unlock | null> {
    const deadline = performance.now() + Math.max(0, waitMs)
    const local = await this.#local.acquire(key, waitMs, leaseMs)
    if (local === null) return null
    const lease = Math.max(1, Math.ceil(leaseMs))
    let hold: Hold = { lockKey: this.#link.key('lock', key), waitKey: this.#link.key('lock-wait', key), token: randomUUID(), until: 0 }
    let pause = this.#pollMs
    for (let first = true; ; first = false) {
      const left = deadline - performance.now()
      if (!first && left <= 0) break
      hold.until = performance.now() + lease
      const r = await this.#link.call('lock.acquire', async (redis) =>
        await this.#acquire(redis, [hold.lockKey, hold.waitKey], [hold.token, lease, Math.max(1, Math.ceil(left))]) as number, Math.max(0, left))
      if (!r.ok) {
        // Redis cannot be reached at all (refused, closed): the degraded mode, the local lock alone.
        if (r.error.kind === 'unavailable' && this.#link.unreachable) return this.#degrade(key, local)
        // Sent with no answer, an error, or a Redis that answers too slowly: it may hold the Redis
        // lock, or another replica may. Not held: let go of what it may hold, and try again while
        // the wait allows; else nothing is done under it.
        if (r.error.kind !== 'unavailable') await this.#letGo(hold)
        if (r.error.kind === 'timeout' || r.error.kind === 'error') {
          hold = { ...hold, token: randomUUID() }
          continue
        }
        this.#log?.warn({ key, err: r.error.message }, 'a shared lock could not be taken (Redis answered too slowly or failed): nobody is evicted under it')
        break
      }
      if (r.value === -1) return this.#unlock(local, hold)
      // Another replica holds it: sleep until its release notice, its lease's end, or the next poll.
      await this.#sleep(hold.lockKey, Math.min(pause, r.value + 1, Math.max(0, deadline - performance.now())))
      pause = Math.min(2 * pause, this.#maxPollMs)
    }
    local()
    return null
  }

  /** The degraded mode: logged once per outage, counted at every use (redis_degraded_total{op="lock"}). */
  #degrade (key: string, local: Unlock): Unlock {
    this.#link.degrade('lock')
    if (!this.#degradedLogged) {
      this.#degradedLogged = true
      this.#log?.warn({ key }, 'Redis cannot be reached: shared locks degrade to this replica\'s own until it returns (two replicas may then take over one stream at once)')
    }
    return this.#unlock(local, undefined)
  }

  /** Replicas' locks this one waits for, for tests and diagnostics. */
  get waiting (): number {
    return this.#waiters.size
  }

  #unlock (local: Unlock, hold: Hold | undefined): Unlock {
    let done = false
    return () => {
      if (done) return
      done = true
      // Sent before the local lock passes on, so this replica's next waiter finds the key free.
      if (hold !== undefined) void this.#letGo(hold)
      local()
    }
  }

  async #letGo (hold: Hold): Promise<void> {
    const r = await this.#link.call('lock.release', async (redis) =>
      await this.#release(redis, [hold.lockKey, hold.waitKey], [hold.token, this.#channel, hold.lockKey]))
    if (!r.ok) this.#unsent.set(hold.token, hold)
  }

  async #sleep (lockKey: string, ms: number): Promise<void> {
    let waiters = this.#waiters.get(lockKey)
    if (waiters === undefined) this.#waiters.set(lockKey, waiters = new Set())
    const set = waiters
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer)
        set.delete(wake)
        if (set.size === 0) this.#waiters.delete(lockKey)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      set.add(wake)
    })
  }
}
