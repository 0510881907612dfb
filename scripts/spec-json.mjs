#!/usr/bin/env node
/**
 * Writes openapi/carpd.json, the spec as carpd reads it at start: the same document as
 * openapi/carpd.yaml (the one edited), as JSON. Parsing 55 KB of YAML allocates enough to
 * grow the daemon's heap by about 10 MiB for good; JSON.parse of the same document does not.
 * `npm run gen:api` runs this; test/generated.test.ts holds the two files equal.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const yamlPath = fileURLToPath(new URL('../openapi/carpd.yaml', import.meta.url));
const jsonPath = fileURLToPath(new URL('../openapi/carpd.json', import.meta.url));
writeFileSync(jsonPath, JSON.stringify(parse(readFileSync(yamlPath, 'utf8')), null, 1) + '\n');
