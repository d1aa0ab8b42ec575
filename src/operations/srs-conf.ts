/**
 * SRS's configuration syntax (nginx-like; SrsConfDirective::parse_conf/read_token in
 * trunk/src/app/srs_app_config.cpp): directives `name args;`, blocks `name args { ... }`, `#` starts
 * a comment where a word could start, words may be quoted with " or '.
 */

export interface Directive {
  name: string
  args: string[]
  children: Directive[]
  line: number
}

export class ConfSyntaxError extends Error {
  constructor (message: string, readonly line: number) {
    super(`line ${line}: ${message}`)
    this.name = 'ConfSyntaxError'
  }
}

/** Parses a conf text into its root's directives; throws ConfSyntaxError where SRS would refuse it. */
export function parseSrsConf (text: string): Directive[] {
  let i = 0
  let line = 1

  // One statement: its words and how it ended.
  const statement = (): { words: string[], end: ';' | '{' | '}' | 'eof', line: number } => {
    const words: string[] = []
    let start = 0
    for (;;) {
      // skip blanks and comments
      while (i < text.length) {
        const ch = text[i]!
        if (ch === '\n') { line++; i++ } else if (ch === ' ' || ch === '\t' || ch === '\r') i++
        else if (ch === '#') { while (i < text.length && text[i] !== '\n') i++ } else break
      }
      if (i >= text.length) {
        if (words.length > 0) throw new ConfSyntaxError('unexpected end of file, expecting ";" or "}"', line)
        return { words, end: 'eof', line }
      }
      const ch = text[i]!
      if (ch === ';' || ch === '{' || ch === '}') {
        i++
        if (ch === '}' && words.length > 0) throw new ConfSyntaxError('unexpected "}"', line)
        if (ch !== '}' && words.length === 0) throw new ConfSyntaxError(`unexpected "${ch}"`, line)
        return { words, end: ch, line: start }
      }
      if (words.length === 0) start = line
      if (ch === '"' || ch === '\'') {
        const close = text.indexOf(ch, i + 1)
        if (close === -1) throw new ConfSyntaxError('unterminated quoted word', line)
        const word = text.slice(i + 1, close)
        line += word.split('\n').length - 1
        i = close + 1
        const next = text[i]
        if (next !== undefined && !' \t\r\n;{'.includes(next)) throw new ConfSyntaxError(`unexpected "${next}" after a quoted word`, line)
        words.push(word)
        continue
      }
      let j = i
      while (j < text.length && !' \t\r\n;{'.includes(text[j]!)) j++
      words.push(text.slice(i, j))
      i = j
    }
  }

  const block = (inBlock: boolean): Directive[] => {
    const out: Directive[] = []
    for (;;) {
      const s = statement()
      if (s.end === 'eof') {
        if (inBlock) throw new ConfSyntaxError('unexpected end of file, expecting "}"', line)
        return out
      }
      if (s.end === '}') {
        if (!inBlock) throw new ConfSyntaxError('unexpected "}"', line)
        return out
      }
      const [name, ...args] = s.words as [string, ...string[]]
      out.push({ name, args, line: s.line, children: s.end === '{' ? block(true) : [] })
    }
  }
  return block(false)
}

export function find (list: Directive[], name: string): Directive | undefined {
  return list.find((d) => d.name === name)
}

/** A switch as SRS reads `enabled`: on only when the first argument is exactly "on". */
export function isOn (d: Directive | undefined): boolean {
  return d?.args[0] === 'on'
}

/**
 * Directive names SRS's own checker (SrsConfig::check_normal_config) accepts, for the blocks
 * srs-hooks cares about, as read in SRS 6.0 and 7.0. A root-level `listen` is SRS 6's form; SRS 7
 * moves it into `rtmp { }` before checking (srs_config_transform_vhost), so both accept it.
 */
export const SRS_ALLOWED: Record<string, readonly string[]> = {
  root: ['listen', 'pid', 'chunk_size', 'ff_log_dir', 'srs_log_tank', 'srs_log_level', 'srs_log_level_v2', 'srs_log_file',
    'max_connections', 'daemon', 'heartbeat', 'tencentcloud_apm', 'http_api', 'stats', 'vhost', 'pithy_print_ms',
    'http_server', 'stream_caster', 'rtc_server', 'srt_server', 'utc_time', 'work_dir', 'asprocess', 'server_id',
    'ff_log_level', 'grace_final_wait', 'force_grace_quit', 'grace_start_wait', 'empty_ip_ok', 'disable_daemon_for_docker',
    'inotify_auto_reload', 'auto_reload_for_docker', 'tcmalloc_release_rate', 'query_latest_version', 'first_wait_for_qlv',
    'circuit_breaker', 'is_full', 'in_docker', 'tencentcloud_cls', 'exporter'],
  http_api: ['enabled', 'listen', 'crossdomain', 'raw_api', 'auth', 'https'],
  'http_api.auth': ['enabled', 'username', 'password'],
  http_server: ['enabled', 'listen', 'dir', 'crossdomain', 'https'],
  vhost: ['enabled', 'chunk_size', 'min_latency', 'tcp_nodelay', 'dvr', 'ingest', 'hls', 'http_hooks', 'refer', 'forward',
    'transcode', 'bandcheck', 'play', 'publish', 'cluster', 'security', 'http_remux', 'dash', 'http_static', 'hds', 'exec',
    'in_ack_size', 'out_ack_size', 'rtc', 'srt'],
  'vhost.dvr': ['enabled', 'dvr_apply', 'dvr_path', 'dvr_plan', 'dvr_duration', 'dvr_wait_keyframe', 'time_jitter'],
  'vhost.http_hooks': ['enabled', 'on_connect', 'on_close', 'on_publish', 'on_unpublish', 'on_play', 'on_stop', 'on_dvr', 'on_hls', 'on_hls_notify']
}

/** Directives SRS's checker would refuse, as `path.name (line N)`, within the blocks in SRS_ALLOWED. */
export function illegalDirectives (root: Directive[]): string[] {
  const out: string[] = []
  const walk = (list: Directive[], path: string): void => {
    const allowed = SRS_ALLOWED[path]
    if (allowed === undefined) return
    for (const d of list) {
      if (!allowed.includes(d.name)) out.push(`${path === 'root' ? '' : path + '.'}${d.name} (line ${d.line})`)
      else walk(d.children, path === 'root' ? d.name : `${path}.${d.name}`)
    }
  }
  walk(root, 'root')
  return out
}
