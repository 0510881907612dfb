/** Command-line flags and their environment variables; flags win. */
import { platform } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BackendName } from '../kernel/backend.js';
import { defaultStateDir } from '../paths.js';

export { PACKAGE_ROOT } from '../paths.js';

export interface DaemonOptions {
  listenHost: string;
  listenPort: number;
  stateDir: string;
  configFile?: string;
  backend: BackendName;
  logLevel: string;
}

export class UsageError extends Error {}


export const USAGE = `usage: carpd [--listen HOST:PORT] [--state-dir DIR] [--config FILE] [--backend memory|sim|linux|freebsd] [--log-level LEVEL]

  --listen HOST:PORT   management API address (CARPD_LISTEN, default 127.0.0.1:8080)
  --state-dir DIR      desired state, revisions and admin.token (CARPD_STATE_DIR,
                       default ./var in a checkout, /var/db/carpd when installed)
  --config FILE        bootstrap file, YAML or JSON, applied when it changes and on SIGHUP (CARPD_CONFIG)
  --backend NAME       kernel backend (CARPD_BACKEND; default freebsd on FreeBSD, else memory)
  --log-level LEVEL    trace|debug|info|warn|error (CARPD_LOG_LEVEL, default info)
`;

const BACKENDS: BackendName[] = ['memory', 'sim', 'linux', 'freebsd'];

export function defaultBackend(os = platform()): BackendName {
  return os === 'freebsd' ? 'freebsd' : 'memory';
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen "${text}" is not HOST:PORT (for example 127.0.0.1:8080 or [::1]:8080)`);
  return { host: m[1] ?? m[2], port };
}

export function parseFlags(argv: string[], env: NodeJS.ProcessEnv): DaemonOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' },
        'state-dir': { type: 'string' },
        config: { type: 'string' },
        backend: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return 'help';
  const listen = parseListen(values.listen ?? env.CARPD_LISTEN ?? '127.0.0.1:8080');
  const backend = (values.backend ?? env.CARPD_BACKEND ?? defaultBackend()) as BackendName;
  if (!BACKENDS.includes(backend)) throw new UsageError(`--backend "${backend}" is not one of ${BACKENDS.join(', ')}`);
  const logLevel = values['log-level'] ?? env.CARPD_LOG_LEVEL ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) throw new UsageError(`--log-level "${logLevel}" is not a pino level`);
  const configFile = values.config ?? env.CARPD_CONFIG;
  return {
    listenHost: listen.host,
    listenPort: listen.port,
    stateDir: path.resolve(values['state-dir'] ?? env.CARPD_STATE_DIR ?? defaultStateDir()),
    configFile: configFile === undefined || configFile === '' ? undefined : path.resolve(configFile),
    backend,
    logLevel,
  };
}
