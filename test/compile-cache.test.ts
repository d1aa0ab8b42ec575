import nodeModule from 'node:module'
import { join } from 'node:path'
import t from 'tap'
import { compileCacheDir, enableCompileCache, flushCompileCache, type CompileCacheApi } from '../src/compile-cache.js'

const compileCacheStatus = { FAILED: 0, ENABLED: 1, ALREADY_ENABLED: 2, DISABLED: 3 }

/** A node:module with a compile cache, answering `status`; the folders it was asked for. */
function withCache (status: number): { api: CompileCacheApi, asked: Array<string | undefined>, flushed: () => number } {
  const asked: Array<string | undefined> = []
  let flushes = 0
  return {
    api: {
      enableCompileCache: (directory) => {
        asked.push(directory)
        return { status, directory }
      },
      flushCompileCache: () => { flushes++ },
      constants: { compileCacheStatus }
    },
    asked,
    flushed: () => flushes
  }
}

t.test('the cache folder is NODE_COMPILE_CACHE when set, else compile-cache in DATA_DIR (./data by default)', async (t) => {
  t.equal(compileCacheDir({ NODE_COMPILE_CACHE: '/var/cache/srs-hooks', DATA_DIR: '/data' }), '/var/cache/srs-hooks')
  t.equal(compileCacheDir({ DATA_DIR: '/data' }), join('/data', 'compile-cache'))
  t.equal(compileCacheDir({}), join('data', 'compile-cache'))
})

t.test('where Node has a compile cache, it is turned on in that folder and its status named', async (t) => {
  const on = withCache(compileCacheStatus.ENABLED)
  t.same(enableCompileCache({ DATA_DIR: '/data' }, on.api), { status: 'enabled', directory: join('/data', 'compile-cache') })
  t.same(on.asked, [join('/data', 'compile-cache')])
  t.equal(enableCompileCache({}, withCache(compileCacheStatus.ALREADY_ENABLED).api).status, 'already-enabled', 'NODE_COMPILE_CACHE turned it on as Node started')
  t.equal(enableCompileCache({}, withCache(compileCacheStatus.DISABLED).api).status, 'disabled', 'NODE_DISABLE_COMPILE_CACHE=1')
  t.equal(enableCompileCache({}, withCache(compileCacheStatus.FAILED).api).status, 'failed', 'a folder that cannot be written')
  t.equal(enableCompileCache({}, withCache(9).api).status, 'failed', 'a status this code does not know is not called enabled')
  const noConstants = withCache(1)
  delete noConstants.api.constants
  t.equal(enableCompileCache({}, noConstants.api).status, 'failed', 'nor is one it cannot name')
})

t.test('a Node without a compile cache (20) starts without one, and a flush does nothing', async (t) => {
  t.same(enableCompileCache({ DATA_DIR: '/data' }, {}), { status: 'unsupported' })
  t.doesNotThrow(() => { flushCompileCache({}) })
})

t.test('a flush writes the cache through Node', async (t) => {
  const on = withCache(compileCacheStatus.ENABLED)
  flushCompileCache(on.api)
  t.equal(on.flushed(), 1)
})

t.test('this Node\'s own module: supported from 22.1, and the status constants are the ones named here', async (t) => {
  const api = nodeModule as unknown as CompileCacheApi
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
  t.equal(api.enableCompileCache !== undefined, major > 22 || (major === 22 && minor >= 1))
  if (api.constants?.compileCacheStatus !== undefined) t.same(api.constants.compileCacheStatus, compileCacheStatus)
  const { status } = enableCompileCache({ NODE_COMPILE_CACHE: t.testdir() })
  t.equal(status === 'unsupported', api.enableCompileCache === undefined, status)
})
