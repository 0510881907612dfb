import { readFileSync } from "node:fs";
import { join } from "node:path";
import createClient from "openapi-fetch";
import type { paths } from "../api/generated/carpd.js";
import { applyCommands } from "./apply.js";
import { parseStrict, redact, scanPositionals, secretsIn, str, type OptionSpecs } from "./args.js";
import { carpCommands } from "./carp.js";
import { clusterCommands } from "./cluster.js";
import { doctorCommands } from "./doctor.js";
import type { Command } from "./command.js";
import { completionCommand } from "./completion.js";
import { configCommands } from "./config.js";
import { helpText, nouns } from "./help.js";
import { CliError, UsageError, type CliIO, type Ctx, type Values } from "./io.js";
import { maintenanceCommands } from "./maintenance.js";
import { demotionCommands } from "./demotion.js";
import { pfsyncCommands } from "./pfsync.js";
import { statsCommands } from "./stats.js";
import { eventsCommands } from "./events.js";
import { statusCommands } from "./status.js";
import { syncCommands } from "./sync.js";
import { switchoverCommands } from "./switchover.js";
import { tlsCommands } from "./tls.js";
import { tokenCommands } from "./token.js";
import { hookCommands } from "./hook.js";
import { trackCommands } from "./track.js";
import { parseFingerprint, trustedFetch, type TlsTrust } from "./transport.js";
import { vipCommands } from "./vip.js";
import { defaultStateDir, PACKAGE_ROOT } from "../paths.js";

export type { CliIO } from "./io.js";

export const DEFAULT_URL = "http://127.0.0.1:8080";

/** The command table: the help, the parser and the shell completion all read it. */
export const commands: Command[] = [
  ...statusCommands,
  ...clusterCommands,
  ...statsCommands,
  ...eventsCommands,
  ...vipCommands,
  ...maintenanceCommands,
  ...demotionCommands,
  ...carpCommands,
  ...pfsyncCommands,
  ...syncCommands,
  ...switchoverCommands,
  ...doctorCommands,
  ...configCommands,
  ...applyCommands,
  ...tokenCommands,
  ...hookCommands,
  ...trackCommands,
  ...tlsCommands,
  completionCommand(() => commands),
];

/** carpctl's version: the package's. */
export function version(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

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

function flagsBeforeEnd(argv: string[]): string[] {
  const end = argv.indexOf("--");
  return end === -1 ? argv : argv.slice(0, end);
}

function wantsHelp(argv: string[]): boolean {
  return flagsBeforeEnd(argv).some((a) => a === "-h" || a === "--help");
}

/**
 * How carpctl trusts an https:// carpd: the pinned fingerprint (--fingerprint, else
 * CARPD_FINGERPRINT) and/or a CA file (--ca, else CARPD_CA). A command with a --fingerprint of
 * its own (sync set: the peer's) takes the pin from CARPD_FINGERPRINT only.
 */
function tlsTrust(values: Values, env: CliIO["env"], cmd: Command, url: URL): TlsTrust {
  const ownFingerprint = cmd.options?.fingerprint !== undefined;
  const fpFlag = ownFingerprint ? undefined : str(values, "fingerprint");
  const fpRaw = fpFlag ?? (env.CARPD_FINGERPRINT || undefined);
  const caFile = str(values, "ca") ?? (env.CARPD_CA || undefined);
  const fpSource = fpFlag !== undefined ? "--fingerprint" : "CARPD_FINGERPRINT";
  if (url.protocol !== "https:" && (fpRaw !== undefined || caFile !== undefined)) {
    throw new UsageError(
      `${fpRaw !== undefined ? fpSource : str(values, "ca") !== undefined ? "--ca" : "CARPD_CA"} is for an https:// carpd, but the URL is ${url.origin}: ` +
        "use https:// in --url / CARPD_URL (carpd --tls), or drop it",
    );
  }
  const trust: TlsTrust = {};
  if (fpRaw !== undefined) {
    const fp = parseFingerprint(fpRaw);
    if (!fp) throw new UsageError(`${fpSource} must be a SHA-256 fingerprint (64 hex digits, colons optional), got '${fpRaw}'`);
    trust.fingerprint = fp;
  }
  if (caFile !== undefined) {
    try {
      trust.ca = { pem: readFileSync(caFile, "utf8"), file: caFile };
    } catch (e) {
      throw new UsageError(`--ca / CARPD_CA: cannot read ${caFile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return trust;
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
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url / CARPD_URL is not a valid URL: '${url}'`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new UsageError(`--url / CARPD_URL must be http:// or https://, got '${url}'`);
  const trust = tlsTrust(values, io.env, cmd, parsed);
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
    fetch: parsed.protocol === "https:" ? trustedFetch(trust) : io.fetch,
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
    // carpctl's version, unless the command has a --version of its own (pfsync set).
    const ownVersion = commands.some((c) => c.options?.version && c.words.every((w, i) => words[i] === w));
    if (flagsBeforeEnd(argv).includes("--version") && !ownVersion) {
      io.stdout(`carpctl ${version()}\n`);
      return 0;
    }
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
