/**
 * Structured JSON logs (pino); human-readable on a terminal when pino-pretty is installed (a
 * development dependency: a firewall's carpd runs under daemon(8) and writes JSON). Secrets are
 * redacted wherever they appear.
 */
import { createRequire } from 'node:module';
import tty from 'node:tty';
import pino, { type Logger } from 'pino';
import { LogSink } from './log-sink.js';

/**
 * Property names whose values never reach a log: at the top of a line's object, or one or two
 * levels below it (`vip.password`, `req.headers.authorization`, in an array as in an object).
 */
export const SECRET_NAMES: ReadonlySet<string> = new Set(['password', 'token', 'key', 'authorization']);
export const CENSOR = '[redacted]';
const DEPTH = 2;

/**
 * `value` with every property named in SECRET_NAMES, down to `depth` levels below it, replaced
 * by CENSOR. What holds a secret is copied; the caller's objects are never changed, and a line
 * without secrets is passed on as it is.
 *
 * This takes the place of pino's `redact` option, whose @pinojs/redact parses every path again
 * for each field of each line (about 13 KB of short-lived objects per line): at 1000 VIPs the
 * 1000 state lines of an election made enough of them to grow V8's young generation to 32 MiB
 * (bench/README.md, "Memory"). A walk of the line's first levels costs nothing of the kind.
 */
export function redacted(value: unknown, depth = DEPTH): unknown {
  if (typeof value !== 'object' || value === null) return value;
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[k];
    const r = SECRET_NAMES.has(k) ? CENSOR : depth > 0 ? redacted(v, depth - 1) : v;
    if (r !== v) {
      copy ??= (Array.isArray(value) ? [...value] : { ...value }) as Record<string, unknown>;
      copy[k] = r;
    }
  }
  return copy ?? value;
}

/** Whether pino-pretty can be loaded from here (it is not installed with carpd's production dependencies). */
export function prettyAvailable(resolve: (id: string) => string = createRequire(import.meta.url).resolve): boolean {
  try {
    resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/** pino-pretty's options for a terminal. */
const PRETTY_OPTIONS = { colorize: true, translateTime: 'SYS:standard', ignore: 'pid,hostname,name' };

// fd 1 is looked at with isatty, never through process.stdout: that stream, once made, would
// hold fd 1 beside the log sink's own stream.
export function createLogger(level: string, destination?: pino.DestinationStream, pretty = tty.isatty(1) && prettyAvailable()): Logger {
  const options: pino.LoggerOptions = { level, base: { name: 'carpd' }, formatters: { log: (o) => redacted(o) as Record<string, unknown> } };
  if (destination) return pino(options, destination);
  if (pretty) return pino({ ...options, transport: { target: 'pino-pretty', options: PRETTY_OPTIONS } });
  return pino(options);
}

/**
 * A destination that shows each JSON line pretty (pino-pretty's prettyFactory, in this thread)
 * and hands it to `sink`: a terminal in a checkout gets the same bounded, never-blocking queue
 * as a file or a pipe. undefined when pino-pretty cannot be loaded.
 */
export function prettyInto(sink: LogSink, load: (id: string) => unknown = createRequire(import.meta.url)): pino.DestinationStream | undefined {
  let prettify: (line: string) => string;
  try {
    const { prettyFactory } = load('pino-pretty') as { prettyFactory: (o: object) => (line: string) => string };
    prettify = prettyFactory(PRETTY_OPTIONS);
  } catch {
    return undefined;
  }
  return {
    write: (line: string) => {
      let shown: string;
      try {
        shown = prettify(line);
      } catch {
        shown = line;
      }
      sink.write(shown.endsWith('\n') ? shown : `${shown}\n`);
    },
  };
}

/**
 * carpd's logger: its lines go through a LogSink on fd 1 (bounded, never blocking; see
 * log-sink.ts); on a terminal with pino-pretty installed (development), shown pretty on the way.
 */
export function daemonLogger(level: string, pretty = tty.isatty(1) && prettyAvailable()): { logger: Logger; sink: LogSink } {
  const sink = LogSink.stdout();
  const destination = (pretty && prettyInto(sink)) || sink;
  return { logger: createLogger(level, destination, false), sink };
}
