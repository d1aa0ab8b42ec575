import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { Value } from 'typebox/value'

/**
 * Request validation with TypeBox's compiled checks, exactly as @fastify/type-provider-typebox's
 * TypeBoxValidatorCompiler does it (a body as it is; a querystring, params or headers converted
 * first: `?limit=5` is a number), without loading that package's runtime at start (it imports
 * ajv-formats; its types stay). A failed check answers TypeBox's errors, which the app's error
 * handler words (describeError). Each route's check is compiled at its first request rather than
 * at start (about a tenth of a start's CPU for all the routes): the same check, later.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  let check: ReturnType<typeof Compile<TSchema>> | undefined
  return (value: unknown) => {
    check ??= Compile(schema)
    const converted = httpPart === 'body' ? value : Value.Convert(schema, value)
    return check.Check(converted) ? { value: converted } : { error: check.Errors(converted) as never }
  }
}

/**
 * Fastify's default serializer compiler (fast-json-stringify, as @fastify/fast-json-stringify-
 * compiler builds it for an app with no shared schemas), building each route's serializer at its
 * first reply instead of at start: building them all is about a tenth of a start (fast-json-
 * stringify and an Ajv instance for each `anyOf`), most of them for routes a restart never needs
 * in its first seconds. The serializers are the same functions.
 */
export function lazySerializerCompiler (): FastifySerializerCompiler<TSchema> {
  const build = SerializerSelector()({}, undefined)
  return (routeSchema) => {
    let serialize: ((data: unknown) => string) | undefined
    return (data: unknown) => {
      serialize ??= build(routeSchema as never) as (data: unknown) => string
      return serialize(data)
    }
  }
}
