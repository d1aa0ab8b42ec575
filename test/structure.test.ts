import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

/**
 * The structure, kept: no import cycles; the takeover core (src/publishers/) imports no media
 * server's adapter; nothing imports the entry file src/cli.ts (importing it runs the command); and
 * the production build holds the server only.
 */

const root = fileURLToPath(new URL('..', import.meta.url))

async function sources (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, e.name)
    if (e.isDirectory()) out.push(...await sources(path))
    else if (e.name.endsWith('.ts')) out.push(path)
  }
  return out
}

/** file -> the project files it imports (type-only imports too: they are dependencies all the same). */
async function graph (): Promise<Map<string, string[]>> {
  const files = [...await sources('src'), ...await sources('routes')]
  const edges = new Map<string, string[]>()
  for (const file of files) {
    const text = await readFile(join(root, file), 'utf8')
    const targets = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)]
      .map((m) => m[1] ?? m[2]!)
      .map((spec) => relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts'))
    edges.set(file, targets)
  }
  return edges
}

t.test('no import cycles in src/ and routes/', async (t) => {
  const edges = await graph()
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const visit = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '))
      return
    }
    state.set(file, 'open')
    for (const next of edges.get(file) ?? []) visit(next, [...path, file])
    state.set(file, 'done')
  }
  for (const file of edges.keys()) visit(file, [])
  t.same(cycles, [])
  t.ok(edges.size > 30, `read ${edges.size} files`)
})

t.test('the takeover core imports no media server, store or HTTP code; nothing imports src/cli.ts', async (t) => {
  const edges = await graph()
  const outward = [...edges].flatMap(([file, targets]) => file.startsWith('src/publishers/') && !file.endsWith('plugin.ts')
    ? targets.filter((x) => /^src\/(srs|zlm|redis|recordings|operations|auth|cli)\/|^routes\//.test(x)).map((x) => `${file} -> ${x}`)
    : [])
  t.same(outward, [], 'dependencies point inward')
  const intoCli = [...edges].filter(([, targets]) => targets.includes('src/cli.ts')).map(([file]) => file)
  t.same(intoCli, [])
})

t.test('the production build holds the server and the console only: no benchmark, no simulator', async (t) => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const { stdout } = await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--listFilesOnly'], { cwd: root })
  const ours = stdout.split('\n').filter((f) => f.startsWith(root) && !f.includes('node_modules')).map((f) => relative(root, f))
  t.ok(ours.includes('src/server.ts') && ours.includes('routes/callbacks.ts'))
  t.same(ours.filter((f) => !/^(src|routes)\//.test(f)), [], 'nothing but src/ and routes/')
  const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8')
  t.notMatch(dockerfile, /COPY (scripts\/(?!build-console\.mjs )|test)/, 'the image copies no benchmark or fixture (of scripts/, only the console\'s build)')
  t.match(dockerfile, /COPY web /, 'the console\'s sources, which npm run build bundles')
})
