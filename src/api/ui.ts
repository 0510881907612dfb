/**
 * The status page at /ui/: three static files shipped in the package's `ui/` directory (HTML,
 * CSS and a browser ES module, no build step, nothing from a CDN). They are mounted before
 * authentication: the page holds no data and needs no token; it asks for one and sends it with
 * each data request, which the API checks as it checks any other.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Router } from 'express';
import { CarpdError } from '../errors.js';
import { sendProblem } from './problem.js';

/** The package's ui/ directory: two levels up from src/api/ (tsx) and from dist/api/ (compiled). */
export const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

/** Only what the page is made of is served (no listing, no dot files, nothing else). */
const FILES = new Set(['index.html', 'app.js', 'style.css']);

export function uiRouter(dir: string = UI_DIR): Router {
  const r = express.Router({ strict: true });
  r.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    // /ui → /ui/, so that the page's relative links resolve under /ui/.
    if (req.originalUrl.split('?')[0] === req.baseUrl) return res.redirect(301, `${req.baseUrl}/`);
    const name = req.path === '/' ? 'index.html' : req.path.slice(1);
    if (!FILES.has(name)) return next();
    res.set({
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
      'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    });
    res.sendFile(path.join(dir, name), { dotfiles: 'deny' }, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });
  r.use((req, res) => sendProblem(res, new CarpdError('CARPD_ERR_ROUTE_NOT_FOUND', 'no such file of the status page; it is at /ui/'), req));
  return r;
}
