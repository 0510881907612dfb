import type { Command } from "./command.js";

const GLOBAL = `global flags (allowed anywhere):
  --url URL          carpd's address (env CARPD_URL, default http://127.0.0.1:8080; https:// for carpd --tls)
  --fingerprint FP   https: trust exactly the certificate with this SHA-256 fingerprint (env CARPD_FINGERPRINT;
                     'carpctl tls fingerprint' prints it); for 'sync set', --fingerprint is the peer's: use the env
  --ca FILE          https: trust certificates signed by the CA in FILE, name checked (env CARPD_CA);
                     with neither, the system's CAs
  --token T          API token (env CARPD_TOKEN, else <state-dir>/admin.token)
  --state-dir DIR    where admin.token lives (env CARPD_STATE_DIR, default ./var in a checkout, /var/db/carpd installed)
  --json             print the raw JSON answer, for scripts
  --if-match REV     only change when the desired state is still at revision REV
  --dry-run          show the plan; apply and store nothing
  --force            on a sync secondary, change objects the primary manages anyway; they leave
                     sync until 'carpctl sync set --reattach' (vip add/set/rm, carp set, config rollback,
                     apply, diff)
  -h, --help         this help
  --version          print carpctl's version

exit codes: 0 ok, 1 error from carpd or carpd unreachable, 2 bad command line;
  diff: 0 nothing would change, 2 something would, 1 any error, a bad command line included`;

function entry(c: Command): string {
  const line = ["carpctl", ...c.words, c.synopsis].filter(Boolean).join(" ");
  return `  ${line}\n      ${c.summary}`;
}

/** Help for every command, or only for those of one noun. */
export function helpText(commands: Command[], noun?: string): string {
  const shown = noun ? commands.filter((c) => c.words[0] === noun) : commands;
  return `usage: carpctl [flags] COMMAND [ARGS]\n\ncommands:\n${shown.map(entry).join("\n")}\n\n${GLOBAL}\n`;
}

export function nouns(commands: Command[]): string[] {
  return [...new Set(commands.map((c) => c.words[0]))];
}
