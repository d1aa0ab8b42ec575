import type { TSchema } from 'typebox'

/** One failed check, as TypeBox's Value.Errors and compiled checks list them. */
export interface SchemaError {
  keyword: string
  schemaPath: string
  instancePath: string
  params: Record<string, unknown>
  message: string
}

/**
 * TypeBox's errors in words a reader can act on, one per value that failed, in the order they
 * came: a union of constants lists its values (`must be one of open, closed`, not "must be equal to
 * constant; must match a schema in anyOf"), another union names what each branch wanted, and a
 * pattern says the form the schema's own `expected` annotation describes (`expected
 * redis://host:port`) rather than quoting its regular expression. Every enum and pattern of a
 * schema is worded this way, none by hand.
 */
export function wordErrors (errors: Iterable<SchemaError>, root?: TSchema): Array<{ path: string, message: string }> {
  const byPath = new Map<string, SchemaError[]>()
  for (const e of errors) {
    const list = byPath.get(e.instancePath)
    if (list === undefined) byPath.set(e.instancePath, [e])
    else list.push(e)
  }
  return [...byPath].map(([path, list]) => ({ path, message: wordOne(list, root) }))
}

function wordOne (list: SchemaError[], root: TSchema | undefined): string {
  const union = list.find((e) => e.keyword === 'anyOf')
  if (union !== undefined) {
    const branches = list.filter((e) => e.schemaPath.startsWith(`${union.schemaPath}/anyOf/`))
    if (branches.length > 0 && branches.every((e) => e.keyword === 'const')) {
      return `must be one of ${branches.map((e) => String(e.params.allowedValue)).join(', ')}`
    }
    return branches.length === 0 ? union.message : [...new Set(branches.map((e) => e.message))].join(' or ')
  }
  return [...new Set(list.map((e) => e.keyword === 'pattern' ? patternMessage(e, root) : e.message))].join('; ')
}

/** `expected <form>` from the failing schema's `expected` annotation; TypeBox's own words without one. */
function patternMessage (e: SchemaError, root: TSchema | undefined): string {
  const expected = (schemaAt(root, e.schemaPath) as { expected?: unknown } | undefined)?.expected
  return typeof expected === 'string' ? `expected ${expected}` : e.message
}

/** The schema a `#/properties/X/...` path names inside `root`. */
function schemaAt (root: TSchema | undefined, path: string): unknown {
  let at: unknown = root
  for (const key of path.replace(/^#\/?/, '').split('/').filter((k) => k !== '')) {
    at = (at as Record<string, unknown> | undefined)?.[key]
  }
  return at
}
