/** The OpenAPI document, the single source of truth for the API, loaded once. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const SPEC_PATH = fileURLToPath(new URL('../../openapi/carpd.yaml', import.meta.url));

let cached: Record<string, unknown> | undefined;

export function loadSpec(): Record<string, unknown> {
  cached ??= parse(readFileSync(SPEC_PATH, 'utf8')) as Record<string, unknown>;
  return cached;
}
