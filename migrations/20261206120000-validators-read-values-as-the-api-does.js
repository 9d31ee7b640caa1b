// The validators judge values as the API does, in two ways.
//
// Patterns end where the API's end. The declarations' patterns are ECMAScript's, where `$`
// matches only at the end of the text; MongoDB reads them as PCRE, where `$` also matches before a
// final line break, so the database took "EUR\n" for a currency that the API refuses. Every end
// anchor of the derived validators (the four document collections and the audit trail) becomes
// PCRE's `\z`, which is what `$` means to the API.
//
// Customers' e-mail addresses are checked as the API checks them (format email, Ajv's expression
// spelled for PCRE) instead of not at all.
//
// The anchors are a rewrite of whatever validator each collection has rather than a snapshot: the
// change is one spelling, the same in every pattern, and the validators it applies to are the
// snapshots of the migrations before it. Safe to run again: each step leaves a validator that is
// already as it wants it unchanged. `down` reverses both.

const COLLECTIONS = ['products', 'customers', 'stock', 'orders', 'audit_events'];

/** ajv-formats' full e-mail expression (/.../i), with a-zA-Z for its case-insensitive a-z and \z for $. */
const EMAIL_PATTERN =
  "^[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\\.)+[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\\z";

/** A pattern with each end anchor (`from`, unescaped, outside a character class) spelled `to`. */
function respell(pattern, from, to) {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    if (!inClass && pattern.startsWith(from, i)) {
      out += to;
      i += from.length - 1;
    } else if (pattern[i] === '\\') {
      out += pattern.slice(i, i + 2);
      i++;
    } else {
      if (pattern[i] === '[') inClass = true;
      else if (pattern[i] === ']') inClass = false;
      out += pattern[i];
    }
  }
  return out;
}

/** A copy of a $jsonSchema with every pattern and patternProperties key respelled. */
function respellSchema(schema, from, to) {
  if (Array.isArray(schema)) return schema.map((item) => respellSchema(item, from, to));
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'pattern' && typeof value === 'string') out[key] = respell(value, from, to);
    else if (key === 'patternProperties') {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([pattern, inner]) => [respell(pattern, from, to), respellSchema(inner, from, to)]),
      );
    } else out[key] = respellSchema(value, from, to);
  }
  return out;
}

/** The customers validator with the e-mail pattern set (true) or removed (false), keys in the same order. */
function withEmailPattern(validator, present) {
  const email = validator.$jsonSchema?.properties?.email;
  if (email === undefined) return validator;
  const { pattern: _pattern, description, ...rest } = email;
  const changed = {
    ...rest,
    ...(present && { pattern: EMAIL_PATTERN }),
    ...(description !== undefined && { description }),
  };
  return {
    ...validator,
    $jsonSchema: { ...validator.$jsonSchema, properties: { ...validator.$jsonSchema.properties, email: changed } },
  };
}

/** @param db {import('mongodb').Db} */
async function changeValidators(db, change) {
  for (const name of COLLECTIONS) {
    const [info] = await db.listCollections({ name }).toArray();
    const validator = info?.options?.validator;
    if (validator === undefined) continue;
    const changed = change(name, validator);
    if (JSON.stringify(changed) === JSON.stringify(validator)) continue;
    await db.command({
      collMod: name,
      validator: changed,
      validationLevel: info.options.validationLevel ?? 'strict',
      validationAction: info.options.validationAction ?? 'error',
    });
  }
}

/** @param db {import('mongodb').Db} */
export const up = async (db) =>
  changeValidators(db, (name, validator) => {
    const respelled = respellSchema(validator, '$', '\\z');
    return name === 'customers' ? withEmailPattern(respelled, true) : respelled;
  });

/** @param db {import('mongodb').Db} */
export const down = async (db) =>
  changeValidators(db, (name, validator) =>
    respellSchema(name === 'customers' ? withEmailPattern(validator, false) : validator, '\\z', '$'),
  );
