import { Pool } from 'undici'

/**
 * The connection pool of one media server's API: 16 connections, kept 4 s idle. ApiDispatcher
 * (dispatcher.ts) imports this module at an API client's first call, not at start: undici is a
 * large module, and a restarted server answers the hooks that need no API call before it has
 * loaded it.
 */
export function apiPool (url: string, connectTimeoutMs: number): Pool {
  return new Pool(url, { connections: 16, keepAliveTimeout: 4000, connectTimeout: connectTimeoutMs })
}
