/**
 * The OpenAPI document, the single source of truth for the API, loaded once. openapi/carpd.yaml
 * is the one edited; carpd reads its JSON twin (openapi/carpd.json, written by npm run gen:api
 * and held equal to the YAML by a test), because parsing the YAML at start costs the daemon
 * about 10 MiB of heap it never gives back.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SPEC_PATH = fileURLToPath(new URL('../../openapi/carpd.yaml', import.meta.url));
export const SPEC_JSON_PATH = fileURLToPath(new URL('../../openapi/carpd.json', import.meta.url));

let cached: Record<string, unknown> | undefined;

export function loadSpec(): Record<string, unknown> {
  cached ??= JSON.parse(readFileSync(SPEC_JSON_PATH, 'utf8')) as Record<string, unknown>;
  return cached;
}
