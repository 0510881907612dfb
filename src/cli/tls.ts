import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expectArgs, str } from "./args.js";
import type { Command } from "./command.js";
import { CliError } from "./io.js";
import { fingerprintOfPem } from "./transport.js";

/** Where carpd keeps the management API's self-signed certificate (carpd --tls). */
export const API_CERT = join("api", "cert.pem");

export const tlsCommands: Command[] = [
  {
    words: ["tls", "fingerprint"],
    synopsis: "[--cert FILE]",
    summary: "the SHA-256 fingerprint of carpd's API certificate, to pin with --fingerprint (read from <state-dir>/api/cert.pem, or FILE)",
    options: { cert: { type: "string" } },
    async run(ctx, args, values) {
      expectArgs("tls fingerprint", args, []);
      const file = str(values, "cert") ?? join(ctx.stateDir, API_CERT);
      let pem: string;
      try {
        pem = readFileSync(file, "utf8");
      } catch (e) {
        throw new CliError(
          `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\n` +
            "hint: carpd makes it on its first start with --tls; for a certificate of your own give --cert FILE (carpd's --tls-cert); --state-dir / CARPD_STATE_DIR says where carpd's state is",
        );
      }
      let fingerprint: string;
      try {
        fingerprint = fingerprintOfPem(pem);
      } catch (e) {
        throw new CliError(`${file}: not a PEM certificate (${(e as Error).message})`);
      }
      if (ctx.json) ctx.out(JSON.stringify({ fingerprint, certificate: file }, null, 2));
      else ctx.out(fingerprint);
    },
  },
];
