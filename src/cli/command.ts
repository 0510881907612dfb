import type { OptionSpecs } from "./args.js";
import type { Ctx, Values } from "./io.js";

export interface Command {
  /** The command words, e.g. ["vip", "add"]. */
  words: string[];
  /** Synopsis after the command words, for the help text. */
  synopsis: string;
  summary: string;
  options?: OptionSpecs;
  /** The values the first argument takes, offered by shell completion. */
  choices?: string[];
  /** Whether --dry-run / --if-match / --force mean anything here. */
  dryRun?: boolean;
  ifMatch?: boolean;
  /** The request detaches what it changes from sync on a secondary with force=true. */
  force?: boolean;
  /** The exit code of a bad command line, when 2 means something else for this command (diff). */
  usageExit?: number;
  /** Resolves to the exit code when it is not 0 (diff: 2 when something would change). */
  run(ctx: Ctx, args: string[], values: Values): Promise<void | number>;
}
