/** A pino logger whose lines a test reads back, parsed. */
import pino, { type Logger } from 'pino';

export function capturingLogger(level = 'info'): { logger: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  return { logger: pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, any>) }), lines };
}
