/** An event as hooks and webhooks receive it: the JSON payload, and a hook's CARPD_* environment. */
import type { AnyEvent } from '../service/events.js';

/** The payload on a hook's stdin and in a webhook's POST body. */
export interface EventPayload {
  id: number;
  type: string;
  time: string;
  data: unknown;
  /** The node (host name) the event happened on. */
  node: string;
}

export function payloadOf(e: AnyEvent, node: string): EventPayload {
  return { id: e.id, type: e.type, time: e.time, data: e.data, node };
}

/** `effectiveSkew` → `EFFECTIVE_SKEW`. */
export const upperSnake = (k: string) =>
  k
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase();

/**
 * The event in environment variables: CARPD_EVENT (the type), CARPD_EVENT_ID, CARPD_EVENT_TIME,
 * CARPD_NODE, and each field of the body as CARPD_<UPPER_SNAKE> (objects and arrays as JSON,
 * null as ""). vhid.state also gets CARPD_STATE (the state entered) and CARPD_PREVIOUS_STATE,
 * the names keepalived's and ucarp's scripts are used to.
 */
export function eventEnv(e: AnyEvent, node: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.data as unknown as Record<string, unknown>)) {
    env[`CARPD_${upperSnake(k)}`] = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  if (e.type === 'vhid.state') {
    env.CARPD_STATE = e.data.to;
    env.CARPD_PREVIOUS_STATE = e.data.from;
  }
  env.CARPD_EVENT = e.type;
  env.CARPD_EVENT_ID = String(e.id);
  env.CARPD_EVENT_TIME = e.time;
  env.CARPD_NODE = node;
  return env;
}
