import neostandard from 'neostandard'

export default [
  // What the build, the benchmark's build and the test runner write.
  { ignores: ['dist/', 'dist-bench/', 'coverage/', '.tap/', 'web/dist/'] },
  ...neostandard({ ts: true }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (a background task whose errors it handles itself).
      'no-void': ['error', { allowAsStatement: true }],
      // A variable a closure reads before its one assignment (a server's handler and the object made
      // from that server) cannot be a const.
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }],
      // A TypeBox schema and its type share one name (const HookReply, type HookReply); TypeScript
      // itself refuses a real redeclaration.
      '@typescript-eslint/no-redeclare': 'off'
    }
  }
]
