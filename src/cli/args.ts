import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError, type Values } from "./io.js";

export type OptionSpecs = NonNullable<ParseArgsConfig["options"]>;

export const globalOptions: OptionSpecs = {
  url: { type: "string" },
  fingerprint: { type: "string" },
  ca: { type: "string" },
  token: { type: "string" },
  "state-dir": { type: "string" },
  json: { type: "boolean" },
  "if-match": { type: "string" },
  "dry-run": { type: "boolean" },
  force: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
};

/** Options whose values are secrets and must never appear in a message. */
const SECRET_OPTIONS = ["--password", "--token"];

export function secretsIn(argv: string[]): string[] {
  const secrets: string[] = [];
  argv.forEach((arg, i) => {
    for (const name of SECRET_OPTIONS) {
      if (arg === name && i + 1 < argv.length) secrets.push(argv[i + 1]);
      else if (arg.startsWith(name + "=")) secrets.push(arg.slice(name.length + 1));
    }
  });
  return secrets.filter((s) => s.length > 0);
}

export function redact(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join("***");
  return out;
}

/** Lenient first pass: only finds the positionals (the command words). */
export function scanPositionals(argv: string[], allOptions: OptionSpecs): string[] {
  const { positionals } = parseArgs({
    args: argv,
    options: { ...allOptions, ...globalOptions },
    strict: false,
    allowPositionals: true,
  });
  return positionals;
}

export function parseStrict(
  argv: string[],
  options: OptionSpecs,
): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...globalOptions, ...options },
      strict: true,
      allowPositionals: true,
    });
    return { values: values as Values, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

export function list(values: Values, name: string): string[] | undefined {
  const v = values[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : undefined;
}

export function int(flag: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got '${raw}'`);
  }
  const n = Number(raw.trim());
  if (n < min || n > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${n}`);
  }
  return n;
}

export function optInt(values: Values, name: string, min: number, max: number): number | undefined {
  const raw = str(values, name);
  return raw === undefined ? undefined : int(`--${name}`, raw, min, max);
}

export function bool(flag: string, raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === "true" || v === "yes" || v === "on" || v === "1") return true;
  if (v === "false" || v === "no" || v === "off" || v === "0") return false;
  throw new UsageError(`${flag} must be true or false, got '${raw}'`);
}

export function optBool(values: Values, name: string): boolean | undefined {
  const raw = str(values, name);
  return raw === undefined ? undefined : bool(`--${name}`, raw);
}

export function oneOf<T extends string>(what: string, raw: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  throw new UsageError(`${what} must be one of ${allowed.join(", ")}, got '${raw}'`);
}

/** Checks the positional count; `names` documents them for the message. */
export function expectArgs(
  command: string,
  positionals: string[],
  names: string[],
  optional = 0,
): void {
  const max = names.length;
  const min = max - optional;
  if (positionals.length < min) {
    throw new UsageError(`${command}: missing ${names.slice(positionals.length, min).join(" ")}`);
  }
  if (positionals.length > max) {
    throw new UsageError(`${command}: unexpected argument '${positionals[max]}'`);
  }
}

export function vhidArg(raw: string): number {
  return int("VHID", raw, 1, 255);
}
