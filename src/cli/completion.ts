/**
 * Shell completion for bash, zsh and fish, generated from the command table the help is made
 * from (and the global flags), so a command or flag cannot be in one and missing from the
 * other. Each script finds the command words typed so far (skipping flags and the values of
 * flags that take one), then offers the next words, the command's flags, or the values of its
 * first argument (Command.choices).
 */
import { expectArgs, globalOptions, oneOf, type OptionSpecs } from "./args.js";
import type { Command } from "./command.js";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** What may follow the command words `key` ("" at the top, "vip", "vip add"). */
interface Node {
  words: string[];
  flags: string[];
  choices: string[];
}

function flagsOf(options: OptionSpecs): string[] {
  const out: string[] = [];
  for (const [name, spec] of Object.entries(options)) {
    out.push(`--${name}`);
    if (spec.short) out.push(`-${spec.short}`);
  }
  return out;
}

function valueFlags(commands: Command[]): string[] {
  const all: OptionSpecs = Object.assign({}, globalOptions, ...commands.map((c) => c.options ?? {}));
  return Object.entries(all)
    .filter(([, s]) => s.type === "string")
    .flatMap(([name, s]) => [`--${name}`, ...(s.short ? [`-${s.short}`] : [])]);
}

/** The completion tree: for each prefix of command words, what may come next. */
export function completionTree(commands: Command[]): Map<string, Node> {
  const globals = flagsOf(globalOptions);
  const tree = new Map<string, Node>();
  const node = (key: string) => {
    let n = tree.get(key);
    if (!n) tree.set(key, (n = { words: [], flags: globals, choices: [] }));
    return n;
  };
  node("");
  for (const c of commands) {
    for (let i = 0; i < c.words.length; i++) {
      const parent = node(c.words.slice(0, i).join(" "));
      if (!parent.words.includes(c.words[i])) parent.words.push(c.words[i]);
    }
    const n = node(c.words.join(" "));
    n.flags = [...new Set([...flagsOf(c.options ?? {}), ...globals])];
    n.choices = c.choices ?? [];
  }
  return tree;
}

const sq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

export function completionScript(shell: Shell, commands: Command[]): string {
  const tree = completionTree(commands);
  const takesValue = valueFlags(commands);
  if (shell === "fish") return fish(tree, takesValue);
  // bash and zsh share the case table: KEY) words=...; flags=...; choices=...
  const cases = [...tree]
    .map(([key, n]) => `    ${sq(key)}) nextwords=${sq(n.words.join(" "))}; flags=${sq(n.flags.join(" "))}; choices=${sq(n.choices.join(" "))}; found=1 ;;`)
    .join("\n");
  const table = `__carpctl_next() {
  # $1: the command words so far, space-separated. Sets nextwords, flags, choices, and found
  # (empty when $1 is not a command: it then ends with arguments).
  nextwords=''; flags=''; choices=''; found=''
  case "$1" in
${cases}
  esac
}

__carpctl_find() {
  # $1: the words typed; the longest prefix that is a command, and whether arguments follow it.
  local key="$1"
  args=0
  while :; do
    __carpctl_next "$key"
    [[ -n "$found" || -z "$key" ]] && break
    args=$((args + 1))
    if [[ "$key" == *" "* ]]; then key="\${key% *}"; else key=''; fi
  done
  # Only the first argument has choices.
  [[ $args -eq 0 ]] || choices=''
}`;
  const valueCase = takesValue.join("|");
  if (shell === "bash") {
    return `# bash completion for carpctl: source it, or put it in /usr/local/share/bash-completion/completions/carpctl
${table}

_carpctl() {
  local line="\${COMP_LINE:0:COMP_POINT}" cur='' key='' skip='' w nextwords flags choices found args
  local -a typed
  read -ra typed <<< "$line"
  [[ "$line" =~ [[:space:]]$ ]] || { cur="\${typed[\${#typed[@]}-1]}"; unset 'typed[\${#typed[@]}-1]'; }
  for w in "\${typed[@]:1}"; do
    if [[ -n "$skip" ]]; then skip=''; continue; fi
    case "$w" in
      ${valueCase}) skip=1 ;;
      -*) ;;
      *) key="\${key:+$key }$w" ;;
    esac
  done
  __carpctl_find "$key"
  if [[ -n "$skip" ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else COMPREPLY=($(compgen -W "$nextwords $choices" -- "$cur"))
  fi
}
complete -F _carpctl carpctl carpctl.js
`;
  }
  return `#compdef carpctl
# zsh completion for carpctl: put it in a directory of $fpath as _carpctl, or source it after compinit
${table}

_carpctl() {
  local key='' skip='' w nextwords flags choices found args
  local -a typed
  typed=("\${(@)words[2,CURRENT-1]}")
  local cur="\${words[CURRENT]}"
  for w in "\${typed[@]}"; do
    if [[ -n "$skip" ]]; then skip=''; continue; fi
    case "$w" in
      ${valueCase}) skip=1 ;;
      -*) ;;
      *) key="\${key:+$key }$w" ;;
    esac
  done
  if [[ -n "$skip" ]]; then _files; return; fi
  __carpctl_find "$key"
  if [[ "$cur" == -* ]]; then compadd -- \${=flags}
  else compadd -- \${=nextwords} \${=choices}
  fi
}
# Autoloaded from $fpath, this file is the body of _carpctl: define it, then complete. Sourced: register it.
if [[ "$funcstack[1]" == "_carpctl" ]]; then _carpctl "$@"; else compdef _carpctl carpctl carpctl.js; fi
`;
}

function fish(tree: Map<string, Node>, takesValue: string[]): string {
  const lines = [
    "# fish completion for carpctl: put it in ~/.config/fish/completions/carpctl.fish",
    `set -g __carpctl_keys ${[...tree.keys()].filter((k) => k !== "").map(sq).join(" ")}`,
    "function __carpctl_key",
    "    set -l skip 0",
    "    set -l key",
    "    for w in (commandline -opc)[2..-1]",
    "        if test $skip = 1",
    "            set skip 0",
    "            continue",
    "        end",
    "        switch $w",
    `            case ${takesValue.map(sq).join(" ")}`,
    "                set skip 1",
    "            case '-*'",
    "            case '*'",
    "                # Only command words: past them come the command's arguments.",
    "                set -l next (string join ' ' -- $key $w)",
    "                contains -- $next $__carpctl_keys; and set -a key $w",
    "        end",
    "    end",
    "    string join ' ' -- $key",
    "end",
    "function __carpctl_is",
    "    set -l key (__carpctl_key)",
    '    test "$key" = "$argv[1]"',
    "end",
    "complete -c carpctl -f",
  ];
  for (const [key, n] of tree) {
    const cond = `-n ${sq(`__carpctl_is ${sq(key)}`)}`;
    if (n.words.length) lines.push(`complete -c carpctl ${cond} -a ${sq(n.words.join(" "))}`);
    if (n.choices.length) lines.push(`complete -c carpctl ${cond} -a ${sq(n.choices.join(" "))}`);
    for (const f of n.flags) {
      const value = takesValue.includes(f) ? " -r" : "";
      lines.push(f.startsWith("--") ? `complete -c carpctl ${cond} -l ${f.slice(2)}${value}` : `complete -c carpctl ${cond} -s ${f.slice(1)}${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** `carpctl completion SHELL`, over the table it is given (the one the help shows, itself included). */
export function completionCommand(table: () => Command[]): Command {
  return {
    words: ["completion"],
    synopsis: "bash|zsh|fish",
    summary: "print the shell completion script (bash: source <(carpctl completion bash))",
    choices: [...SHELLS],
    async run(ctx, args) {
      expectArgs("completion", args, ["SHELL"]);
      const shell = oneOf("SHELL", args[0], SHELLS);
      ctx.io.stdout(completionScript(shell, table()));
    },
  };
}
