import t from 'tap'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { wordErrors } from '../src/schema-errors.js'

t.test('a pattern without an expected form keeps TypeBox\'s words; one with it says the form', async (t) => {
  const S = Type.Object({ a: Type.String({ pattern: '^x' }), b: Type.String({ pattern: '^y', expected: 'y...' }) })
  t.same(wordErrors(Value.Errors(S, { a: 'z', b: 'z' }), S), [
    { path: '/a', message: 'must match pattern "^x"' },
    { path: '/b', message: 'expected y...' }
  ])
  t.same(wordErrors(Value.Errors(S, { a: 'z', b: 'z' })), [
    { path: '/a', message: 'must match pattern "^x"' },
    { path: '/b', message: 'must match pattern "^y"' }
  ], 'without the schema, TypeBox\'s words')
})

t.test('a union whose branches said nothing keeps the union\'s own words', async (t) => {
  t.same(wordErrors([{ keyword: 'anyOf', schemaPath: '#/properties/u', instancePath: '/u', params: {}, message: 'must match a schema in anyOf' }]), [
    { path: '/u', message: 'must match a schema in anyOf' }
  ])
})
