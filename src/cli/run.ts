import { readFileSync } from "node:fs";
import { join } from "node:path";
import createClient from "openapi-fetch";
import type { paths } from "../api/generated/carpd.js";
import { applyCommands } from "./apply.js";
import { parseStrict, redact, scanPositionals, secretsIn, str, type OptionSpecs } from "./args.js";
import { carpCommands } from "./carp.js";
import { clusterCommands } from "./cluster.js";
import type { Command } from "./command.js";
import { configCommands } from "./config.js";
import { helpText, nouns } from "./help.js";
import { CliError, UsageError, type CliIO, type Ctx, type Values } from "./io.js";
import { maintenanceCommands } from "./maintenance.js";
import { pfsyncCommands } from "./pfsync.js";
import { statsCommands } from "./stats.js";
import { statusCommands } from "./status.js";
import { syncCommands } from "./sync.js";
import { tokenCommands } from "./token.js";
import { vipCommands } from "./vip.js";
import { defaultStateDir } from "../paths.js";

export type { CliIO } from "./io.js";

export const DEFAULT_URL = "http://127.0.0.1:8080";

const commands: Command[] = [
  ...statusCommands,
  ...clusterCommands,
  ...statsCommands,
  ...vipCommands,
  ...maintenanceCommands,
  ...carpCommands,
  ...pfsyncCommands,
  ...syncCommands,
  ...configCommands,
  ...applyCommands,
  ...tokenCommands,
];

const allOptions: OptionSpecs = Object.assign({}, ...commands.map((c) => c.options ?? {}));

function find(words: string[]): Command {
  const match = commands
    .filter((c) => c.words.every((w, i) => words[i] === w))
    .sort((a, b) => b.words.length - a.words.length)[0];
  if (match) return match;
  const noun = words[0];
  if (noun === undefined) throw new UsageError("no command given");
  const verbs = commands.filter((c) => c.words[0] === noun).map((c) => c.words[1]);
  if (verbs.length) {
    throw new UsageError(
      words[1] === undefined
        ? `'${noun}' needs one of: ${verbs.join(", ")}`
        : `unknown command '${noun} ${words[1]}'; '${noun}' takes one of: ${verbs.join(", ")}`,
    );
  }
  throw new UsageError(`unknown command '${noun}'; commands: ${nouns(commands).join(", ")}`);
}

function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === "-h" || a === "--help");
}

function ifMatchHeader(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const v = raw.trim().replace(/^"(.*)"$/, "$1");
  if (v === "*") return "*";
  if (!/^\d+$/.test(v)) throw new UsageError(`--if-match must be a revision number (or *), got '${raw}'`);
  return `"${Number(v)}"`;
}

function resolveToken(values: Values, env: CliIO["env"], stateDir: string): { token?: string; source: string } {
  const flag = str(values, "token");
  if (flag) return { token: flag, source: "--token" };
  if (env.CARPD_TOKEN) return { token: env.CARPD_TOKEN, source: "CARPD_TOKEN" };
  const file = join(stateDir, "admin.token");
  try {
    const token = readFileSync(file, "utf8").trim();
    if (token) return { token, source: file };
  } catch {
    // Not readable: send no token and let the 401 hint explain.
  }
  return { source: `none (${file} not readable)` };
}

function makeContext(io: CliIO, values: Values, cmd: Command): Ctx {
  const url = str(values, "url") ?? (io.env.CARPD_URL || DEFAULT_URL);
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url / CARPD_URL is not a valid URL: '${url}'`);
  }
  const dryRun = values["dry-run"] === true;
  const force = values.force === true;
  const ifMatch = ifMatchHeader(str(values, "if-match"));
  const name = cmd.words.join(" ");
  if (dryRun && !cmd.dryRun) throw new UsageError(`--dry-run does not apply to '${name}'`);
  if (ifMatch && !cmd.ifMatch) throw new UsageError(`--if-match does not apply to '${name}'`);
  if (force && !cmd.force) throw new UsageError(`--force does not apply to '${name}'`);
  const stateDir = str(values, "state-dir") ?? (io.env.CARPD_STATE_DIR || defaultStateDir());
  const { token, source } = resolveToken(values, io.env, stateDir);
  const api = createClient<paths>({
    baseUrl: url,
    fetch: io.fetch,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  return {
    io,
    api,
    url,
    stateDir,
    tokenSource: source,
    json: values.json === true,
    dryRun,
    force,
    ifMatch,
    out: (s) => io.stdout(s.endsWith("\n") ? s : `${s}\n`),
  };
}

/** Runs one carpctl invocation; answers the exit code, never exits. */
export async function run(argv: string[], io: CliIO): Promise<number> {
  const secrets = secretsIn(argv);
  let noun: string | undefined;
  let cmd: Command | undefined;
  try {
    const words = scanPositionals(argv, allOptions);
    noun = nouns(commands).includes(words[0]) ? words[0] : undefined;
    if (wantsHelp(argv)) {
      io.stdout(helpText(commands, noun));
      return 0;
    }
    if (words.length === 0) {
      io.stderr(helpText(commands));
      return 2;
    }
    cmd = find(words);
    const { values, positionals } = parseStrict(argv, cmd.options ?? {});
    const ctx = makeContext(io, values, cmd);
    return (await cmd.run(ctx, positionals.slice(cmd.words.length), values)) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      const help = noun ? `carpctl ${noun} --help` : "carpctl --help";
      io.stderr(`carpctl: ${redact(err.message, secrets)}\nrun '${help}' for usage\n`);
      return cmd?.usageExit ?? 2;
    }
    if (err instanceof CliError) {
      io.stderr(`carpctl: ${err.message}\n`);
      return 1;
    }
    io.stderr(`carpctl: ${redact((err as Error)?.message ?? String(err), secrets)}\n`);
    return 1;
  }
}
