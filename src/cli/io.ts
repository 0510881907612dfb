import type { Client } from "openapi-fetch";
import type { paths } from "../api/generated/carpd.js";

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Record<string, string | undefined>;
  fetch?: typeof fetch;
  /** All of standard input, for `-f -`. */
  stdin?: () => Promise<string>;
}

/** Bad command line: exit 2. */
export class UsageError extends Error {}

/** API refused the request, or carpd could not be reached: exit 1. */
export class CliError extends Error {}

export type Api = Client<paths>;

export interface Ctx {
  io: CliIO;
  api: Api;
  url: string;
  stateDir: string;
  /** Where the token came from, for the 401 hint. */
  tokenSource: string;
  json: boolean;
  dryRun: boolean;
  /** --force: on a sync secondary, change objects the primary manages (they leave sync). */
  force: boolean;
  /** Already quoted, ready for the If-Match header. */
  ifMatch?: string;
  /** Print one line (or block) to stdout. */
  out: (s: string) => void;
}

export type Values = Record<string, string | boolean | string[] | undefined>;
