import { run } from "./run.js";

// A reader that stops early (`carpctl ... | head -1`) closes the pipe: the rest of the output
// has nowhere to go, which is not an error worth a stack trace. Exit quietly, as a
// SIGPIPE-killed C program would, but with 0: the reader got what it asked for.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
}

process.exitCode = await run(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  stdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
});
