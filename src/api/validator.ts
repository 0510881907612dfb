/**
 * Requests and responses checked against the spec (openapi/carpd.yaml), with one Ajv instance
 * that holds the document once and compiles each schema the first time a request needs it, so
 * that start-up compiles nothing and every operation's schemas share the component schemas
 * they reference.
 *
 * Requests, in this order (the first failure answers):
 *   1. the path and method: 404 CARPD_ERR_ROUTE_NOT_FOUND, 405 CARPD_ERR_METHOD_NOT_ALLOWED with
 *      `Allow`, 400 for a path that does not percent-decode;
 *   2. an operation with a body: its Content-Type must be one the spec lists (415);
 *   3. query parameters: reserved characters left unencoded, names the operation does not
 *      declare and empty values are refused;
 *   4. query, header and path parameters (query and path values are text: converted to the
 *      schema's type first, as Ajv's coercion would, and defaults filled in), then the body,
 *      which is never converted; every problem is listed in `errors[]`.
 * A handler therefore sees `req.query` with typed values and defaults, and bodies as sent (with
 * the spec's defaults filled in).
 *
 * Responses sent with `res.json` are checked against the operation's response for their status
 * (or `default`): one that does not match is logged (`response.invalid`, with the problems)
 * and answered 500 CARPD_ERR_INTERNAL instead, so a wrong body never reaches a client.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import type { Logger } from 'pino';
import { CarpdError, type FieldProblem } from '../errors.js';
import { sendProblem } from './problem.js';

type Json = Record<string, any>;
type Location = 'query' | 'headers' | 'params';

const addFormats = addFormatsPlugin as unknown as (ajv: Ajv2020, opts: { mode: 'fast' }) => void;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const LOCATION: Record<string, Location | undefined> = { query: 'query', header: 'headers', path: 'params' };
/** RFC 3986 reserved characters: a query value carrying one unencoded is refused. */
const RESERVED = /[:/?#[\]@!$&'()*+,;=]/;

interface Parameter {
  name: string;
  in: Location;
  required: boolean;
  /** The pointer of its schema in the spec. */
  ref: string;
  /** That schema, with a $ref followed: its `type` and `default` apply to query and path values. */
  schema: Json;
  /** OpenAPI's allowReserved: the value may carry reserved characters unencoded (a comma-separated list). */
  allowReserved: boolean;
}

interface Operation {
  /** JSON pointer of the operation in the spec, e.g. `#/paths/~1v1~1vips/post`. */
  pointer: string;
  op: Json;
  parameters: Parameter[];
  /** Media type → pointer of the body schema; undefined when the operation takes no body. */
  bodies?: Map<string, string>;
  bodyRequired: boolean;
  paramsValidator?: ValidateFunction;
  /** Its query parameters by name (made once: every request of the operation looks them up). */
  declared: Map<string, Parameter>;
}

interface PathEntry {
  /** The spec's path, e.g. `/v1/vips/{interface}/{vhid}`. */
  template: string;
  re: RegExp;
  names: string[];
  operations: Map<string, Operation>;
  allow: string;
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A Content-Type as the spec compares it: the media type, lower case, without parameters. */
function mediaTypeOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const type = header.split(';')[0].toLowerCase().trim();
  return type === '' ? undefined : type;
}

/** The Content-Type as the 415 answer names it: media type and sorted parameters. */
function normalizedContentType(header: string): string {
  const params: string[] = [];
  for (const m of header.matchAll(/;\s*([^=]+)=([^;]+)/g)) {
    const key = m[1].toLowerCase();
    if (key !== 'boundary') params.push(`; ${key}=${key === 'charset' ? m[2].toLowerCase() : m[2]}`);
  }
  return `${header.split(';')[0].toLowerCase().trim()}${params.sort().join('')}`;
}

/**
 * A text value converted to the type its schema names, the way Ajv's `coerceTypes` converts
 * scalars (numbers from numeric text, booleans from "true"/"false"); anything else is left for
 * the schema to refuse.
 */
function coerce(value: unknown, type: unknown): unknown {
  if (typeof value !== 'string') return value;
  switch (type) {
    case 'number':
      return value !== '' && (value as unknown as number) == +value ? +value : value;
    case 'integer':
      return value !== '' && (value as unknown as number) == +value && !(+value % 1) ? +value : value;
    case 'boolean':
      return value === 'true' ? true : value === 'false' ? false : value;
    default:
      return value;
  }
}

/** Ajv's errors as problem entries: the field's path (a missing or extra property's own), the message and `<keyword>.openapi.validation`. */
function problemsOf(errors: ErrorObject[] | null | undefined, prefix: string): FieldProblem[] {
  return (errors ?? []).map((e) => {
    const p = e.params as { missingProperty?: string; additionalProperty?: string; unevaluatedProperty?: string; allowedValues?: unknown[] };
    const field = p.missingProperty ?? p.additionalProperty ?? p.unevaluatedProperty;
    let message = e.message ?? '';
    if (e.keyword === 'enum' && Array.isArray(p.allowedValues)) message = `${message}: ${p.allowedValues.join(', ')}`;
    return { path: prefix + (field === undefined ? e.instancePath : `${e.instancePath}/${field}`), message, code: `${e.keyword}.openapi.validation` };
  });
}

function invalidRequest(errors: FieldProblem[]): CarpdError {
  return new CarpdError('CARPD_ERR_VALIDATION', `the request does not match the API schema: ${errors.map((x) => `${x.path} ${x.message}`).join('; ')}`, { errors });
}

function unsupportedMediaType(header: string | undefined): CarpdError {
  if (header === undefined) return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', 'the request has no body or no Content-Type; send a JSON body with Content-Type: application/json');
  return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', `unsupported media type ${normalizedContentType(header)}; send Content-Type: application/json`);
}

/** The request's property holding the path template (`/v1/vips/{interface}/{vhid}`) the validator matched it to. */
const MATCHED = Symbol('carpd.template');

/** The spec's path template of a request the validator middleware has matched to an operation (dispatch.ts routes by it). */
export function templateMatched(req: object): string | undefined {
  return (req as { [MATCHED]?: string })[MATCHED];
}

/** How many `/` a path has, one trailing `/` aside: a template's regular expression matches only paths with as many as it. */
function slashes(path: string): number {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 0x2f) n++;
  return path.length > 1 && path.charCodeAt(path.length - 1) === 0x2f ? n - 1 : n;
}

export class SpecValidator {
  private readonly paths: PathEntry[] = [];
  /** `paths` by slashes(template), each list in the spec's order: the only ones a path can match. */
  private readonly bySlashes = new Map<number, PathEntry[]>();
  private ajvInstance?: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(private readonly spec: Json) {
    for (const [template, item] of Object.entries(spec.paths as Json)) {
      const names: string[] = [];
      const pattern = template
        .split(/(\{[^}]+\})/)
        .map((part) => {
          const m = /^\{([^}]+)\}$/.exec(part);
          if (!m) return escapeRegExp(part);
          names.push(m[1]);
          return '([^/]+)';
        })
        .join('');
      const operations = new Map<string, Operation>();
      for (const method of METHODS) {
        const op = (item as Json)[method] as Json | undefined;
        if (op) operations.set(method, this.operation(template, method, item as Json, op));
      }
      // Express matches paths without regard to case and with or without a trailing slash.
      const entry: PathEntry = { template, re: new RegExp(`^${pattern}/?$`, 'i'), names, operations, allow: [...operations.keys()].map((m) => m.toUpperCase()).join(', ') };
      this.paths.push(entry);
      const n = slashes(template);
      this.bySlashes.set(n, [...(this.bySlashes.get(n) ?? []), entry]);
    }
  }

  /** The spec's paths a request path may match, in the spec's order. */
  private candidates(path: string): readonly PathEntry[] {
    return this.bySlashes.get(slashes(path)) ?? [];
  }

  /** The spec's path template a request path matches (`/v1/vips/{interface}/{vhid}`), if any. */
  templateOf(path: string): string | undefined {
    return this.candidates(path).find((e) => e.re.test(path))?.template;
  }

  /** The validator of a schema in the spec, by JSON pointer (`#/components/schemas/Status`), compiled on first use. */
  schema(pointer: string): ValidateFunction {
    let fn = this.compiled.get(pointer);
    if (!fn) {
      fn = this.ajv().getSchema(`carpd${pointer}`);
      if (!fn) throw new Error(`the spec has no schema at ${pointer}`);
      this.compiled.set(pointer, fn);
    }
    return fn;
  }

  /**
   * Checks `body` against a schema of the spec; undefined when it matches, else the problems
   * (paths relative to the body).
   */
  check(pointer: string, body: unknown): FieldProblem[] | undefined {
    const fn = this.schema(pointer);
    return fn(body) ? undefined : problemsOf(fn.errors, '');
  }

  /**
   * The middleware: validates each request, and (with `responses`) each JSON response of the
   * operation it matched. Mount it after authentication and body parsing, before the routers.
   */
  middleware(opts: { responses: boolean; logger: Logger }): RequestHandler {
    return (req: Request, res: Response, next: NextFunction): void => {
      const path = req.originalUrl.split('?')[0];
      const found = this.match(req.method, path, res);
      if (found instanceof CarpdError) return next(found);
      const { operation, params, template } = found;
      (req as { [MATCHED]?: string })[MATCHED] = template;
      if (opts.responses) this.checkResponses(operation, req, res, opts.logger);
      const problem = this.checkRequest(operation, params, req);
      if (problem) return next(problem);
      next();
    };
  }

  private ajv(): Ajv2020 {
    if (!this.ajvInstance) {
      // Every problem listed, formats checked, bodies never converted (query and path values
      // are converted by checkRequest, from text only).
      const ajv = new Ajv2020({ strict: false, strictNumbers: true, strictTuples: true, allErrors: true, validateSchema: false, useDefaults: true, coerceTypes: false, validateFormats: true });
      addFormats(ajv, { mode: 'fast' });
      // The spec is referenced, not copied: GET /openapi.json and Swagger UI serve the same object.
      ajv.addSchema({ ...this.spec, $id: 'carpd' }, 'carpd');
      this.ajvInstance = ajv;
    }
    return this.ajvInstance;
  }

  private operation(template: string, method: string, item: Json, op: Json): Operation {
    const pointer = `#/paths/${escapePointer(template)}/${method}`;
    const parameters: Parameter[] = [];
    const add = (list: Json[] | undefined, base: string) =>
      (list ?? []).forEach((p, i) => {
        let ref = `${base}/parameters/${i}`;
        let param = p;
        if (typeof param.$ref === 'string') {
          ref = param.$ref;
          param = this.resolve(ref);
        }
        const loc = LOCATION[param.in as string];
        if (!loc) return;
        let schemaRef = `${ref}/schema`;
        let schema = param.schema as Json;
        if (typeof schema?.$ref === 'string') {
          schemaRef = schema.$ref as string;
          schema = this.resolve(schemaRef);
        }
        const name = loc === 'headers' ? (param.name as string).toLowerCase() : (param.name as string);
        const at = parameters.findIndex((x) => x.in === loc && x.name === name);
        const entry = { name, in: loc, required: param.required === true, ref: schemaRef, schema, allowReserved: param.allowReserved === true };
        // An operation's parameter replaces the path's of the same name and location.
        if (at >= 0) parameters[at] = entry;
        else parameters.push(entry);
      });
    add(item.parameters as Json[] | undefined, `#/paths/${escapePointer(template)}`);
    add(op.parameters as Json[] | undefined, pointer);
    const declared = new Map(parameters.filter((p) => p.in === 'query').map((p) => [p.name, p]));
    const operation: Operation = { pointer, op, parameters, bodyRequired: false, declared };
    let body = op.requestBody as Json | undefined;
    let bodyPointer = `${pointer}/requestBody`;
    if (typeof body?.$ref === 'string') {
      bodyPointer = body.$ref as string;
      body = this.resolve(bodyPointer);
    }
    if (body?.content) {
      operation.bodies = new Map(Object.keys(body.content as Json).map((type) => [type.toLowerCase(), `${bodyPointer}/content/${escapePointer(type)}/schema`]));
      operation.bodyRequired = body.required === true;
    }
    return operation;
  }

  private resolve(pointer: string): Json {
    let node: any = this.spec;
    for (const part of pointer.replace(/^#\//, '').split('/')) node = node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (node === undefined) throw new Error(`the spec has nothing at ${pointer}`);
    return node as Json;
  }

  private match(method: string, path: string, res: Response): { operation: Operation; params: Record<string, string>; template: string } | CarpdError {
    for (const entry of this.candidates(path)) {
      const m = entry.re.exec(path);
      if (!m) continue;
      const operation = entry.operations.get(method.toLowerCase());
      if (!operation) {
        // RFC 9110: a 405 names the methods the resource does allow.
        res.setHeader('Allow', entry.allow);
        return new CarpdError('CARPD_ERR_METHOD_NOT_ALLOWED', `${method} method not allowed; see /docs for the methods of this resource`);
      }
      const params: Record<string, string> = {};
      try {
        entry.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1])));
      } catch {
        return invalidRequest([{ path, message: 'is not a valid percent-encoded path' }]);
      }
      return { operation, params, template: entry.template };
    }
    return new CarpdError('CARPD_ERR_ROUTE_NOT_FOUND', 'no such resource; the API is described at /openapi.json and /docs');
  }

  private checkRequest(operation: Operation, pathParams: Record<string, string>, req: Request): CarpdError | undefined {
    let bodyPointer: string | undefined;
    if (operation.bodies) {
      const header = req.headers['content-type'];
      const type = mediaTypeOf(header);
      bodyPointer = type === undefined ? undefined : operation.bodies.get(type);
      if (bodyPointer === undefined && (operation.bodyRequired || type !== undefined)) return unsupportedMediaType(header);
    }

    const declared = operation.declared;
    const query: Record<string, unknown> = {};
    // Without a query string there is nothing to check of it (and Express's req.query, parsed
    // on each read, would be empty): only the defaults below.
    if (req.originalUrl.includes('?')) {
      const raw = rawQuery(req.originalUrl);
      for (const [name, p] of declared) {
        if (!p.allowReserved && (raw.get(name) ?? []).some((v) => RESERVED.test(v))) {
          return invalidRequest([{ path: `/query/${name}`, message: `Parameter '${name}' must be url encoded. Its value may not contain reserved characters.` }]);
        }
      }
      for (const [key, value] of Object.entries((req.query ?? {}) as Record<string, unknown>)) {
        // `a[b]=c` names parameter a, with an object value (which no scalar schema accepts).
        const bracket = key.indexOf('[');
        if (bracket > 0) query[key.slice(0, bracket)] = { [key.slice(bracket)]: value };
        else query[key] = value;
      }
      for (const [name, value] of Object.entries(query)) {
        if (!declared.has(name)) return invalidRequest([{ path: `/query/${name}`, message: `Unknown query parameter '${name}'` }]);
        if (value === '') return invalidRequest([{ path: `/query/${name}`, message: `Empty value found for query parameter '${name}'` }]);
      }
    }

    const params: Record<string, unknown> = {};
    for (const p of operation.parameters) {
      if (p.in === 'query') {
        if (query[p.name] !== undefined) query[p.name] = coerce(query[p.name], p.schema.type);
        else if (p.schema.default !== undefined) query[p.name] = typeof p.schema.default === 'object' && p.schema.default !== null ? structuredClone(p.schema.default) : p.schema.default;
      } else if (p.in === 'params' && pathParams[p.name] !== undefined) {
        params[p.name] = coerce(pathParams[p.name], p.schema.type);
      }
    }
    operation.paramsValidator ??= this.ajv().compile(this.paramsSchema(operation));
    const errors: FieldProblem[] = [];
    if (!operation.paramsValidator({ query, headers: req.headers, params })) errors.push(...problemsOf(operation.paramsValidator.errors, ''));
    if (bodyPointer !== undefined) {
      if (req.body === undefined) {
        if (operation.bodyRequired) errors.push({ path: '/body', message: "must have required property 'body'", code: 'required.openapi.validation' });
      } else {
        const fn = this.schema(bodyPointer);
        if (!fn(req.body)) errors.push(...problemsOf(fn.errors, '/body'));
      }
    }
    if (errors.length > 0) return invalidRequest(errors);
    // Express 5 computes req.query on each read; handlers get the checked, typed values instead.
    Object.defineProperty(req, 'query', { value: query, writable: true, enumerable: true, configurable: true });
    return undefined;
  }

  /** One schema for an operation's parameters, by location, each referring to its schema in the spec. */
  private paramsSchema(operation: Operation): Json {
    // A location without parameters accepts anything: unknown query names are refused before.
    const locations: Record<Location, Json> = { query: {}, headers: {}, params: {} };
    for (const p of operation.parameters) {
      const loc = locations[p.in];
      loc.type = 'object';
      loc.properties ??= {};
      loc.properties[p.name] = { $ref: `carpd${p.ref}` };
      if (p.required) (loc.required ??= []).push(p.name);
    }
    return { type: 'object', required: ['query', 'headers', 'params'], properties: locations };
  }

  private checkResponses(operation: Operation, req: Request, res: Response, logger: Logger): void {
    const send = res.json;
    res.json = (body: unknown) => {
      res.json = send;
      // A 5xx is already the answer to a failure; checking it could only hide the first one.
      if (res.headersSent || res.statusCode >= 500) return send.call(res, body);
      const problems = this.responseProblems(operation, res, body);
      if (!problems) return send.call(res, body);
      logger.error({ event: 'response.invalid', url: req.originalUrl, errors: problems }, 'a response did not match the API schema');
      sendProblem(res, new CarpdError('CARPD_ERR_INTERNAL', 'carpd failed to answer this request; the error is in its log'), req);
      return res;
    };
  }

  private responseProblems(operation: Operation, res: Response, body: unknown): FieldProblem[] | undefined {
    const responses = operation.op.responses as Json;
    const status = String(res.statusCode);
    const key = status in responses ? status : `${status[0]}XX` in responses ? `${status[0]}XX` : 'default' in responses ? 'default' : undefined;
    if (key === undefined) return [{ path: '/response', message: `no schema defined for status code '${status}' in the openapi spec` }];
    let pointer = `${operation.pointer}/responses/${key}`;
    let response = responses[key] as Json;
    if (typeof response.$ref === 'string') {
      pointer = response.$ref as string;
      response = this.resolve(pointer);
    }
    const types = Object.keys((response.content ?? {}) as Json);
    if (types.length === 0) return body === undefined ? undefined : [{ path: '/response', message: 'response should NOT have a body' }];
    if (body === undefined || body === null) return [{ path: '/response', message: 'response body required.' }];
    const sent = mediaTypeOf(res.getHeader('content-type') as string | undefined);
    const type = types.find((t) => t.toLowerCase() === sent) ?? types[0];
    const fn = this.schema(`${pointer}/content/${escapePointer(type)}/schema`);
    return fn(body) ? undefined : problemsOf(fn.errors, '/response');
  }
}

/** The query string's values as sent (not percent-decoded), by name. */
function rawQuery(url: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const q = url.indexOf('?');
  if (q < 0) return out;
  for (const pair of url.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = pair.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), pair.slice(eq + 1)]);
  }
  return out;
}
