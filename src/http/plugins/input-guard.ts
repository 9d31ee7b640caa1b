// The one guard against hostile input, in front of every route, present and future: before any
// route schema looks at a request, its query string and its parsed body are walked once, and the
// request is refused (400, a JSON Pointer per finding) when
// - a key could reach MongoDB as something other than data: an operator (`$where`), a path
//   (`a.b`), a NUL that breaks BSON, or a prototype's name (`__proto__`, `constructor`, `prototype`);
// - a body nests, lists, spells or holds more than the service ever needs (INPUT_LIMITS), so no
//   later step (Ajv, canonical JSON, logging) meets a pathological shape;
// - the query string is not valid percent-encoded UTF-8, names a parameter outside the query
//   language's grammar, or names any parameter at all on a route that declares none.
// A body on a route that takes none is a 415. Route schemas still type every value; this layer
// holds even where one of them is looser than it should be.

import fp from 'fastify-plugin';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type FieldError } from '../../errors.ts';
import { problemResponses } from '../schemas/problem.ts';
import { sendProblem } from './problem-details.ts';
import { REQUEST_ID_HEADER } from './request-context.ts';

export const INPUT_LIMITS = {
  /** Deepest nesting of objects and arrays: a batch of product writes needs 6 levels. */
  depth: 32,
  /** Longest array: the longest legitimate ones (a batch's operations, an order's lines) hold 100. */
  arrayLength: 1000,
  /** Longest string value: a product description holds 5,000 characters. */
  stringLength: 10_000,
  /** Longest member or parameter name: attribute names hold 40 characters. */
  keyLength: 128,
  /** Object members in one body, all levels together: a batch of 100 full products has about 6,500. */
  keys: 10_000,
} as const;

export type InputLimits = { readonly [K in keyof typeof INPUT_LIMITS]: number };

/** Findings reported in one answer; past them the walk stops (the client has enough to fix). */
const MAX_FINDINGS = 20;

/**
 * Member paths that reach an object's prototype: merged into another object, a body holding one
 * could pollute every object. The JSON parser refuses a body with one of these paths (see
 * prototypePath); this guard refuses each of their names as a member or parameter name.
 */
export const PROTOTYPE_PATHS = [['__proto__'], ['constructor', 'prototype']] as const;
const PROTOTYPE_NAMES: ReadonlySet<string> = new Set(PROTOTYPE_PATHS.flat());

/** The members of one of PROTOTYPE_PATHS that `value` holds, as its own members all the way down. */
export function prototypePath(value: object): readonly string[] | undefined {
  return PROTOTYPE_PATHS.find((path) => {
    let at: unknown = value;
    for (const name of path) {
      if (at === null || typeof at !== 'object' || !Object.hasOwn(at, name)) return false;
      at = (at as Record<string, unknown>)[name];
    }
    return true;
  });
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A parameter of the query language: a field path of plain names, and an optional [operator]. */
const QUERY_PARAMETER = /^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*(?:\[[a-z]+\])?$/;

export const jsonPointer = (segments: readonly string[]) =>
  segments.map((segment) => `/${segment.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

/** Why a member name of a body is refused, or undefined when it is acceptable. */
export function memberNameProblem(name: string, limits: InputLimits = INPUT_LIMITS): string | undefined {
  if (name.startsWith('$')) return 'starts with $, which MongoDB would read as an operator';
  if (name.includes('.')) return 'contains a dot, which MongoDB would read as a path';
  if (name.includes('\u0000')) return 'contains a NUL character';
  if (PROTOTYPE_NAMES.has(name)) return `is ${name}, a name that reaches object prototypes`;
  if (name.length > limits.keyLength)
    return `is a name of ${name.length} characters; at most ${limits.keyLength} are allowed`;
  if (LONE_SURROGATE.test(name)) return 'is not well-formed Unicode (it has a lone surrogate)';
  return undefined;
}

/** Why a query parameter name is refused, or undefined when it fits the query language. */
export function parameterNameProblem(name: string, limits: InputLimits = INPUT_LIMITS): string | undefined {
  if (name.includes('$')) return 'contains $; operators are written as [op], e.g. price.amount[gte]';
  if (name.includes('\u0000')) return 'contains a NUL character';
  if (name.length > limits.keyLength)
    return `is a name of ${name.length} characters; at most ${limits.keyLength} are allowed`;
  if (!QUERY_PARAMETER.test(name))
    return 'is not a parameter name: a field path of letters, digits and _, optionally followed by [operator]';
  if (
    name
      .replace(/\[[a-z]+\]$/, '')
      .split('.')
      .some((segment) => PROTOTYPE_NAMES.has(segment))
  )
    return 'names an object prototype';
  return undefined;
}

function stringProblem(value: string, limits: InputLimits): string | undefined {
  if (value.length > limits.stringLength)
    return `is ${value.length} characters long; at most ${limits.stringLength} are allowed`;
  if (LONE_SURROGATE.test(value)) return 'is not well-formed Unicode (it has a lone surrogate)';
  return undefined;
}

/** A place in a parsed body: its path is kept as links to parents, walked only to name a finding. */
export interface PathNode {
  key: string;
  parent: PathNode | undefined;
}

/** The JSON Pointer of a node, or of members below it. */
export function pointerOf(node: PathNode, ...members: string[]): string {
  const segments: string[] = [];
  for (let at = node; at.parent !== undefined; at = at.parent) segments.push(at.key);
  return jsonPointer([...segments.reverse(), ...members]);
}

/** The finding of a body nested past the limit, whoever measures it (the parser or this guard). */
export const tooDeep = (pointer: string, limits: InputLimits = INPUT_LIMITS): FieldError => ({
  in: 'body',
  pointer,
  message: `nests deeper than ${limits.depth} levels`,
});

interface Frame extends PathNode {
  value: unknown;
  /** Objects and arrays enclosing the value. */
  depth: number;
  parent: Frame | undefined;
}

/**
 * The findings in a parsed body (empty when it is acceptable). Iterative, with an explicit stack:
 * a body nested 100,000 levels deep costs a loop, never the call stack.
 */
export function inspectBody(body: unknown, limits: InputLimits = INPUT_LIMITS): FieldError[] {
  const findings: FieldError[] = [];
  const refuse = (frame: Frame, message: string) => findings.push({ in: 'body', pointer: pointerOf(frame), message });
  const root: Frame = { value: body, depth: 0, key: '', parent: undefined };
  const stack: Frame[] = [root];
  let members = 0;
  while (findings.length < MAX_FINDINGS) {
    const frame = stack.pop();
    if (frame === undefined) break;
    const { value } = frame;
    if (typeof value === 'string') {
      const problem = stringProblem(value, limits);
      if (problem !== undefined) refuse(frame, problem);
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    const depth = frame.depth + 1;
    if (depth > limits.depth) {
      findings.push(tooDeep(pointerOf(frame), limits));
      continue;
    }
    if (Array.isArray(value)) {
      if (value.length > limits.arrayLength) {
        refuse(frame, `has ${value.length} items; at most ${limits.arrayLength} are allowed`);
        continue;
      }
      for (let index = value.length - 1; index >= 0; index--)
        stack.push({ value: value[index], depth, key: String(index), parent: frame });
      continue;
    }
    // Parsed JSON holds plain objects only; anything else (a Buffer from a binary parser) is opaque.
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) continue;
    const names = Object.keys(value);
    members += names.length;
    if (members > limits.keys) {
      refuse(root, `has more than ${limits.keys} members in all`);
      break;
    }
    const children: Frame[] = [];
    for (const name of names) {
      const child: Frame = { value: (value as Record<string, unknown>)[name], depth, key: name, parent: frame };
      const problem = memberNameProblem(name, limits);
      if (problem === undefined) children.push(child);
      else refuse(child, problem);
    }
    // Pushed last first, so that they are walked (and findings listed) in document order.
    for (const child of children.reverse()) stack.push(child);
  }
  return findings.slice(0, MAX_FINDINGS);
}

const decodeQueryPart = (part: string) => decodeURIComponent(part.replace(/\+/g, ' '));

/**
 * The findings in a request's query string, read from the raw URL (so they do not depend on how a
 * query parser treats bad escapes or odd names). `declared`: whether the route has query parameters.
 */
export function inspectQuery(url: string, declared: boolean, limits: InputLimits = INPUT_LIMITS): FieldError[] {
  const start = url.indexOf('?');
  if (start === -1) return [];
  const findings: FieldError[] = [];
  const parts = url.slice(start + 1).split('&');
  for (const [index, part] of parts.entries()) {
    if (findings.length >= MAX_FINDINGS) break;
    if (part === '') continue;
    const equals = part.indexOf('=');
    let name: string;
    try {
      name = decodeQueryPart(equals === -1 ? part : part.slice(0, equals));
    } catch {
      findings.push({
        in: 'query',
        pointer: '',
        message: `the name of parameter ${index + 1} is not valid percent-encoded UTF-8`,
      });
      continue;
    }
    const refuse = (message: string) => findings.push({ in: 'query', pointer: jsonPointer([name]), message });
    let value: string;
    try {
      value = equals === -1 ? '' : decodeQueryPart(part.slice(equals + 1));
    } catch {
      refuse('is not valid percent-encoded UTF-8');
      continue;
    }
    const problem =
      parameterNameProblem(name, limits) ??
      (declared ? stringProblem(value, limits) : 'is not a parameter of this route');
    if (problem !== undefined) refuse(problem);
  }
  return findings;
}

/** Whether a request carries a body (a length above 0, or a chunked one). */
function carriesBody(request: FastifyRequest): boolean {
  const { headers } = request.raw;
  return (
    headers['transfer-encoding'] !== undefined ||
    (headers['content-length'] !== undefined && headers['content-length'] !== '0')
  );
}

/**
 * Fastify's `frameworkErrors`: URLs that fail before routing (a path that is not valid
 * percent-encoded UTF-8, a path parameter past its length limit) get a problem document too,
 * instead of Fastify's own JSON.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const problem =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new AppError(414, 'uri-too-long', 'URI Too Long', {
          detail: 'A path segment of the URL is longer than any identifier this service uses.',
        })
      : error.code === 'FST_ERR_BAD_URL'
        ? AppError.badRequest('The URL path is not valid percent-encoded UTF-8.')
        : new AppError(500, 'internal-error', 'Internal Server Error', { detail: 'An unexpected error occurred.' });
  if (problem.status >= 500) request.log.error({ err: error }, 'request failed');
  else request.log.info({ code: problem.code, detail: problem.message }, 'request refused');
  reply.header(REQUEST_ID_HEADER, request.id);
  sendProblem(request, reply, problem);
}

export default fp(
  async (app) => {
    // The contract says how every route can refuse hostile input: a 400, and a 415 for a body it
    // does not read (or, where it reads one, for a media type it does not, and 413 past the limit).
    app.addHook('onRoute', (route) => {
      const schema = (route.schema ??= {}) as Record<string, unknown>;
      if (schema.hide === true) return;
      const statuses = schema.body === undefined ? ([400, 415] as const) : ([400, 413, 415] as const);
      schema.response = { ...problemResponses(...statuses), ...(schema.response as object | undefined) };
    });

    // After the body is parsed and before any schema validates: first of the preValidation hooks,
    // so nothing (idempotency fingerprints included) handles a request this guard refuses.
    app.addHook('preValidation', async (request) => {
      // An unknown route reads nothing from its request: it answers 404 whatever it holds.
      if (request.is404) return;
      const schema = (request.routeOptions.schema ?? {}) as { body?: unknown; querystring?: unknown; query?: unknown };
      if (schema.body === undefined && carriesBody(request)) {
        throw AppError.unsupportedMediaType(`${request.method} ${request.routeOptions.url} takes no request body.`);
      }
      const findings = inspectQuery(request.url, schema.querystring !== undefined || schema.query !== undefined);
      if (request.body !== undefined) findings.push(...inspectBody(request.body));
      if (findings.length > 0) throw AppError.validation(findings);
    });
  },
  // First of the plugins that add preValidation hooks: idempotency names it among its dependencies.
  { name: 'input-guard', dependencies: ['request-context'], fastify: '5.x' },
);
