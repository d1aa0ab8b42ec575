/**
 * Who gets a stream when a newcomer publishes it: a pure function of what SRS reports, so new
 * policies (and authentication) can be added as more inputs and more cases.
 */

/** What SRS's API says about the stream right now. */
export interface LiveStream {
  /** SRS's stream id, when known. */
  id?: string | undefined
  active: boolean
  /** Client id of the active publisher. */
  cid?: string | undefined
}

export type Policy = 'takeover'

export type Decision =
  /** Nobody else holds the stream: let SRS go ahead. */
  | { kind: 'allow', reason: 'free' | 'own' }
  /** Someone else holds it and the newcomer should have it: evict `incumbent` first. */
  | { kind: 'evict', incumbent: string }

export interface DecisionInput {
  policy: Policy
  live: LiveStream
  newcomer: string
}

export function decide ({ live, newcomer }: DecisionInput): Decision {
  if (!live.active || live.cid === undefined) return { kind: 'allow', reason: 'free' }
  if (live.cid === newcomer) return { kind: 'allow', reason: 'own' }
  // 'takeover': the newest publisher wins. A reconnecting device replaces its own dead connection.
  return { kind: 'evict', incumbent: live.cid }
}
