// A schema registered once under its $id (a component of the OpenAPI document) and the reference
// routes use in its place, typed as what the schema validates: the contract names the component,
// the handler gets the type, and a change of the schema breaks its handlers at compile time.

import { Type, type Static, type TSchema } from 'typebox';

export function component<S extends TSchema>(schema: S, $id: string) {
  return { schema: { ...schema, $id }, ref: Type.Unsafe<Static<S>>(Type.Ref($id)) };
}
