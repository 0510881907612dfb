import type { OptionSpecs } from "./args.js";
import type { Ctx, Values } from "./io.js";

export interface Command {
  /** The command words, e.g. ["vip", "add"]. */
  words: string[];
  /** Synopsis after the command words, for the help text. */
  synopsis: string;
  summary: string;
  options?: OptionSpecs;
  /** Whether --dry-run / --if-match / --force mean anything here. */
  dryRun?: boolean;
  ifMatch?: boolean;
  /** The request detaches what it changes from sync on a secondary with force=true. */
  force?: boolean;
  run(ctx: Ctx, args: string[], values: Values): Promise<void>;
}
