/**
 * The routers, mounted as one middleware that hands a request straight to the router holding
 * its operation. Mounted one after the other, each router would be entered in turn, its routes
 * matched and left, until the one that answers: a dozen routers and their regular expressions
 * per request. The spec validator, mounted before, has already found the request's path
 * template (templateMatched), so the owner is one Map lookup away.
 *
 * Whatever the lookup cannot tell for sure goes through every router in order, as before: a
 * method or template no router declares as such, a template that may match the same path as
 * another route (`/a/{x}` and `/a/b`), a router holding a middleware or a route path that is
 * not a string. A router handed a request it then does not match passes it on to `next`, as
 * the routers after it would.
 */
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { templateMatched } from './validator.js';

/** What dispatch reads of a router: its stack of layers (Express 5's router). */
interface Layer {
  route?: { path?: unknown; methods?: Record<string, boolean | undefined> };
}

/** A route path in the spec's form: `:name` → `{name}` (route() made it from the spec's path). */
const specPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** Whether two route paths can match one request path: as many segments, each equal (case aside) or a parameter on either side. */
function overlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  if (x.length !== y.length) return false;
  return x.every((s, i) => s.startsWith(':') || y[i].startsWith(':') || s.toLowerCase() === y[i].toLowerCase());
}

/**
 * One middleware for `routers` (in the order they would have been mounted). `owners` is left
 * out of the fast path for the keys it cannot decide.
 */
export function dispatchRouters(routers: Router[]): RequestHandler {
  const all = Router();
  for (const r of routers) all.use(r);

  /** By the spec's path template, then method (upper case): the router to hand a request to. */
  const owners = new Map<string, Map<string, Router>>();
  const paths: string[] = [];
  let exact = true;
  for (const r of routers) {
    for (const layer of (r as unknown as { stack: Layer[] }).stack) {
      const path = layer.route?.path;
      const methods = layer.route?.methods;
      if (typeof path !== 'string' || !methods || methods._all) {
        exact = false;
        continue;
      }
      paths.push(path);
      const byMethod = owners.get(specPath(path)) ?? new Map<string, Router>();
      owners.set(specPath(path), byMethod);
      for (const m of Object.keys(methods)) if (methods[m] && !byMethod.has(m.toUpperCase())) byMethod.set(m.toUpperCase(), r);
    }
  }
  // A path another path can match as well (case aside, as Express matches): the first router in order decides, as mounted.
  for (const p of new Set(paths)) {
    if (paths.some((q) => q !== p && overlap(p, q))) owners.delete(specPath(p));
  }
  if (!exact) owners.clear();

  return (req: Request, res: Response, next: NextFunction): void => {
    const template = templateMatched(req);
    const owner = template === undefined ? undefined : owners.get(template)?.get(req.method);
    if (owner) owner(req, res, next);
    else all(req, res, next);
  };
}
