/**
 * The API's types, read off the ones generated from openapi/carpd.yaml (npm run gen:api), so
 * that a handler reading a field the spec does not define, or answering a body the spec does
 * not describe, fails to compile:
 *
 *   Schema<'Vip'>                          components.schemas.Vip
 *   Body<'/v1/vips', 'post'>               the JSON request body (VipCreate)
 *   Query<'/v1/vips', 'post'>              the query parameters ({ dryRun?, force? })
 *   Params<'/v1/vips/{interface}/{vhid}', 'get'>   the path parameters ({ interface, vhid })
 *   Json<'/v1/vips', 'post', 201>          the JSON body of one response (Vip)
 *   route(router, 'post', '/v1/vips', (req, res) => ...)   a handler typed by all of these
 *   Assert<SameFields<Schema<'SyncOverride'>, SyncOverride>>   two types that name the same fields
 *
 * The request validator runs before every handler, so what the types promise holds at run
 * time: bodies and query parameters match the spec (query values coerced to their types,
 * defaults filled in). Path parameters are the exception: the router matches them again after
 * validation, as strings, so handlers see them as strings and convert them.
 */
import type { IRouter, Request, Response } from 'express';
import type { components, paths } from './generated/carpd.js';

export type Schema<N extends keyof components['schemas']> = components['schemas'][N];

type Method = 'get' | 'put' | 'post' | 'delete' | 'patch';
export type Path = keyof paths;
/** The methods the spec defines on a path (the others are generated as optional `never`). */
export type MethodOf<P extends Path> = { [M in Method]: [NonNullable<paths[P][M]>] extends [never] ? never : M }[Method];
type Operation<P extends Path, M extends MethodOf<P>> = NonNullable<paths[P][M]>;
type Responses<P extends Path, M extends MethodOf<P>> = Operation<P, M>['responses'];
/** An object type with no fields: reading any field of it is a compile error. */
type Nothing = Record<never, never>;
type OrNothing<T> = [T] extends [never] ? Nothing : T;
type OrUndefined<T> = [T] extends [never] ? undefined : T;

export type Body<P extends Path, M extends MethodOf<P>> = Operation<P, M> extends { requestBody: { content: { 'application/json': infer B } } } ? B : undefined;
export type Query<P extends Path, M extends MethodOf<P>> = OrNothing<NonNullable<Operation<P, M>['parameters']['query']>>;
export type Params<P extends Path, M extends MethodOf<P>> = OrNothing<Operation<P, M>['parameters']['path']>;
/** Path parameters as a handler receives them: their names from the spec, their values as sent. */
export type RawParams<P extends Path, M extends MethodOf<P>> = { [K in keyof Params<P, M>]: string };

type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : never;
export type Json<P extends Path, M extends MethodOf<P>, S extends keyof Responses<P, M>> = JsonOf<Responses<P, M>[S]>;
/**
 * Every JSON body the operation may answer with a 2xx status (a change's result or its dry-run
 * plan); undefined when it answers none (204).
 */
export type SuccessJson<P extends Path, M extends MethodOf<P>> = OrUndefined<Json<P, M, Extract<keyof Responses<P, M>, 200 | 201 | 202 | 203 | 206>>>;

export type TypedRequest<P extends Path, M extends MethodOf<P>> = Request<RawParams<P, M>, SuccessJson<P, M>, Body<P, M>, Query<P, M>>;
export type TypedResponse<P extends Path, M extends MethodOf<P>> = Response<SuccessJson<P, M>>;

/**
 * `true` when A and B name the same fields, otherwise the names only one of them has. Where an
 * object crosses whole between a spec type and one of carpd's own, `Assert<SameFields<A, B>>`
 * keeps the two in step: assignability alone lets an extra field through, and a renamed
 * optional field is just that.
 */
export type SameFields<A, B> = [Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>] extends [never] ? true : Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>;
export type Assert<T extends true> = T;

/** An Express path from an OpenAPI one: `/v1/vips/{interface}/{vhid}` → `/v1/vips/:interface/:vhid`. */
export function expressPath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

/**
 * Registers a handler for an operation of the spec, named by its path and method as the spec
 * spells them; `res.json` then takes only what the operation answers.
 */
export function route<P extends Path, M extends MethodOf<P>>(
  router: IRouter,
  method: M,
  path: P,
  handler: (req: TypedRequest<P, M>, res: TypedResponse<P, M>) => void | Promise<void>,
): void {
  router[method]<string, RawParams<P, M>, SuccessJson<P, M>, Body<P, M>, Query<P, M>>(expressPath(path), handler);
}
