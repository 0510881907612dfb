/**
 * carpctl for scripts and shells: --version; completion scripts generated from the command
 * table, holding every command and flag the help shows (and bash's actually completing); a
 * closed stdout pipe ends carpctl quietly, with a real process writing into a pipe whose
 * reader (`head -c1`) has already gone.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import test from "node:test";
import { globalOptions } from "../src/cli/args.js";
import { completionScript, SHELLS } from "../src/cli/completion.js";
import { helpText } from "../src/cli/help.js";
import { commands, run, type CliIO } from "../src/cli/run.js";
import { cleanEnv, REPO_ROOT } from "./helpers/daemon.js";

const CARPCTL = process.env.CARPD_TEST_DIST === "1" ? ["dist/cli/main.js"] : ["--import", "tsx", "src/cli/main.ts"];
const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

async function runCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIO = { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: {} };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

test("carpctl --version prints the version and exits 0, as a process too; pfsync set keeps its own --version", async () => {
  assert.deepEqual(await runCli(["--version"]), { code: 0, stdout: `carpctl ${VERSION}\n`, stderr: "" });
  assert.equal((await runCli(["status", "--version"])).stdout, `carpctl ${VERSION}\n`);
  const pfsync = await runCli(["pfsync", "set", "--version", "1400", "--help"]);
  assert.equal(pfsync.code, 0);
  assert.match(pfsync.stdout, /carpctl pfsync set .*--version 1301\|1400\|1500/s, "the pfsync version flag, not carpctl's version");

  const p = spawnSync(process.execPath, [...CARPCTL, "--version"], { cwd: REPO_ROOT, env: cleanEnv(), encoding: "utf8" });
  assert.equal(p.status, 0, p.stderr);
  assert.equal(p.stdout, `carpctl ${VERSION}\n`);
  assert.equal(p.stderr, "");
});

test("every command and flag of the table the help shows is in each completion script", async () => {
  const help = helpText(commands);
  for (const g of Object.keys(globalOptions)) assert.match(help, new RegExp(`--${g}\\b`), `the help shows the global --${g}`);
  for (const shell of SHELLS) {
    const script = completionScript(shell, commands);
    const r = await runCli(["completion", shell]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, script, `carpctl completion ${shell} prints the generated script`);
    for (const c of commands) {
      assert.ok(help.includes(`carpctl ${c.words.join(" ")}`), `help shows ${c.words.join(" ")}`);
      for (const w of c.words) assert.match(script, new RegExp(`\\b${w}\\b`), `${shell}: command word '${w}'`);
      for (const name of Object.keys({ ...globalOptions, ...(c.options ?? {}) })) {
        const flag = shell === "fish" ? `-l ${name}` : `--${name}`;
        assert.ok(script.includes(flag), `${shell}: ${c.words.join(" ")}'s ${flag}`);
      }
      for (const choice of c.choices ?? []) assert.ok(script.includes(choice), `${shell}: ${choice}`);
    }
  }
  assert.equal((await runCli(["completion", "tcsh"])).code, 2);
});

test("bash: the completion script parses, and completes commands, verbs, flags and choices", (t) => {
  const script = completionScript("bash", commands);
  const probe = spawnSync("bash", ["-c", "exit 0"]);
  if (probe.error) {
    t.skip("bash is not installed");
    return;
  }
  const complete = (line: string): string[] => {
    const r = spawnSync(
      "bash",
      ["-c", `${script}\nCOMP_LINE="$1"; COMP_POINT=\${#1}; COMPREPLY=(); _carpctl; printf '%s\\n' "\${COMPREPLY[@]}"`, "bash", line],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    return r.stdout.split("\n").filter(Boolean);
  };
  assert.deepEqual(complete("carpctl vi"), ["vip"]);
  assert.deepEqual(complete("carpctl vip a"), ["add"]);
  assert.deepEqual(complete("carpctl tls "), ["fingerprint"]);
  assert.deepEqual(complete("carpctl completion "), ["bash", "zsh", "fish"]);
  assert.deepEqual(complete("carpctl completion bash "), []);
  assert.deepEqual(complete("carpctl --url https://fw1:8443 --fingerprint AB vip add em0 --advs"), ["--advskew"]);
  assert.ok(complete("carpctl ").includes("status"));
  assert.deepEqual(complete("carpctl --finger"), ["--fingerprint"]);
  const sh = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
  assert.equal(sh.status, 0, sh.stderr);
  for (const [shell, check] of [["zsh", ["-n"]], ["fish", ["--no-execute"]]] as const) {
    const s = spawnSync(shell, check, { input: completionScript(shell, commands), encoding: "utf8" });
    if (s.error === undefined) assert.equal(s.status, 0, `${shell}: ${s.stderr}`);
  }
});

test("output into a pipe whose reader has gone (head -c1 finished) ends carpctl quietly: exit 0, no stack trace", (t) => {
  // head reads one byte from a FIFO and exits; only then does carpctl start, its stdout the
  // FIFO's write end, which now has no reader: every write fails with EPIPE.
  const dir = mkdtempSync(path.join(tmpdir(), "carpctl-epipe-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = `
    set -e
    mkfifo "$1/pipe"
    head -c1 < "$1/pipe" > /dev/null &
    exec 4> "$1/pipe"
    printf x >&4
    wait $!
    shift
    set +e
    "$@" >&4 2> "$0/stderr"
    echo "exit $?"
  `;
  const r = spawnSync("sh", ["-c", script, dir, dir, process.execPath, ...CARPCTL, "completion", "bash"], { cwd: REPO_ROOT, env: cleanEnv(), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(path.join(dir, "stderr"), "utf8"), "");
  assert.equal(r.stdout, "exit 0\n");
});
