/** Command-line flags and their environment variables; flags win. */
import { isIPv4 } from 'node:net';
import { hostname, platform } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MAC_MODES, type BackendName, type MacMode } from '../kernel/backend.js';
import { defaultStateDir } from '../paths.js';
import { DEFAULT_SIM_GROUP, formatSimGroup, parseSimGroup, type SimGroup } from '../runtime/udp.js';

export { PACKAGE_ROOT } from '../paths.js';

export interface DaemonOptions {
  listenHost: string;
  listenPort: number;
  stateDir: string;
  configFile?: string;
  backend: BackendName;
  logLevel: string;
  /** The sim backend's multicast group on loopback. */
  simGroup: SimGroup;
  /** This node's name: in /v1/status and in the sim backend's advertisements. */
  nodeName: string;
  /** The config sync listener (mutual TLS), on the sync interface's address; none when absent. */
  syncListen?: { host: string; port: number };
  /** A plain-HTTP listener serving only GET /metrics, without a token; none when absent. */
  metricsListen?: { host: string; port: number };
  /**
   * TLS for the management API: the operator's certificate and key files, or a self-signed
   * certificate carpd makes on first start in `<stateDir>/api/`. None: plain HTTP, allowed only
   * on a loopback address or with `insecureHttp`.
   */
  apiTls?: { certFile: string; keyFile: string } | 'self-signed';
  /** --insecure-http: plain HTTP on a non-loopback address, meant. */
  insecureHttp?: boolean;
  /** One `http.request` log line (info) per API request. */
  accessLog: boolean;
  /** --mac-mode: the MAC mode of VIPs that name none (linux, sim); absent = the backend's default. */
  macMode?: MacMode;
}

export class UsageError extends Error {}


export const USAGE = `usage: carpd [--listen HOST:PORT] [--state-dir DIR] [--config FILE] [--backend memory|sim|linux|freebsd]
             [--sim-group ADDR:PORT] [--node-name NAME] [--sync-listen HOST:PORT] [--log-level LEVEL]
             [--tls | --tls-cert FILE --tls-key FILE | --insecure-http]
             [--access-log on|off] [--metrics-listen HOST:PORT] [--mac-mode virtual|interface]

  --listen HOST:PORT   management API address (CARPD_LISTEN, default 127.0.0.1:8080)
  --state-dir DIR      desired state, revisions and admin.token (CARPD_STATE_DIR,
                       default ./var in a checkout, /var/db/carpd when installed)
  --config FILE        bootstrap file, YAML or JSON, applied when it changes and on SIGHUP (CARPD_CONFIG)
  --backend NAME       kernel backend (CARPD_BACKEND; default freebsd on FreeBSD, else sim)
  --sim-group ADDR:PORT  the sim backend's multicast group, kept on 127.0.0.1 (CARPD_SIM_GROUP,
                       default ${formatSimGroup(DEFAULT_SIM_GROUP)}); sim nodes sharing it see each other
  --node-name NAME     this node's name in status and sim advertisements (CARPD_NODE_NAME,
                       default the host name)
  --sync-listen HOST:PORT  config sync listener, mutual TLS with pinned peers, on the dedicated
                       sync interface's address (CARPD_SYNC_LISTEN; default none: this node pushes
                       but takes no pushes); never the management address
  --log-level LEVEL    trace|debug|info|warn|error (CARPD_LOG_LEVEL, default info)
  --tls                HTTPS for the management API with a self-signed certificate, made on
                       first start in <state-dir>/api/ (CARPD_TLS=1); carpctl pins its SHA-256
                       fingerprint, which carpd logs at start and 'carpctl tls fingerprint' prints
  --tls-cert FILE      HTTPS with this certificate (PEM, the chain may follow) (CARPD_TLS_CERT)
  --tls-key FILE       and this private key (PEM, not readable by all users) (CARPD_TLS_KEY)
  --insecure-http      allow plain HTTP on a non-loopback --listen address (CARPD_INSECURE_HTTP=1);
                       without it, carpd refuses to start there without TLS
  --access-log on|off  one line per API request at level info: method, route, status, ms,
                       token name, source (CARPD_ACCESS_LOG, default on)
  --metrics-listen HOST:PORT  Prometheus metrics at http://HOST:PORT/metrics, plain HTTP without
                       a token, nothing else there (CARPD_METRICS_LISTEN; default none: GET /metrics
                       on the API with any token)
  --mac-mode MODE      the MAC a VIP without its own macMode answers with (CARPD_MAC_MODE): virtual
                       (00:00:5e:00:01:<vhid> on a macvlan, as carp(4)) or interface (the
                       interface's own MAC); default interface on linux and sim; freebsd is
                       always virtual, so interface is refused there
`;

const BACKENDS: BackendName[] = ['memory', 'sim', 'linux', 'freebsd'];

export function defaultBackend(os = platform()): BackendName {
  return os === 'freebsd' ? 'freebsd' : 'sim';
}

export function parseListen(text: string, flag = '--listen'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} "${text}" is not HOST:PORT (for example 127.0.0.1:8080 or [::1]:8080)`);
  return { host: m[1] ?? m[2], port };
}

/** Fits the sim header's node name field (at most 64 bytes) and reads well in logs and reasons. */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function defaultNodeName(): string {
  const h = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return h === '' ? 'carpd' : h;
}

/** 127.0.0.0/8, ::1, ::ffff:127.x.y.z and localhost: the only addresses plain HTTP may listen on. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIPv4(v4) && v4.startsWith('127.');
}

function envFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = (env[name] ?? '').trim().toLowerCase();
  if (v === '' || v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
  throw new UsageError(`${name}="${env[name]}" is not 1/true/yes/on or 0/false/no/off`);
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
        'sim-group': { type: 'string' },
        'node-name': { type: 'string' },
        'sync-listen': { type: 'string' },
        tls: { type: 'boolean' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'insecure-http': { type: 'boolean' },
        'access-log': { type: 'string' },
        'metrics-listen': { type: 'string' },
        'mac-mode': { type: 'string' },
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
  const simGroupText = values['sim-group'] ?? env.CARPD_SIM_GROUP;
  let simGroup: SimGroup = { ...DEFAULT_SIM_GROUP };
  if (simGroupText !== undefined && simGroupText !== '') {
    try {
      simGroup = parseSimGroup(simGroupText);
    } catch (e) {
      throw new UsageError(`--sim-group ${(e as Error).message}`);
    }
  }
  const nodeName = values['node-name'] ?? (env.CARPD_NODE_NAME || defaultNodeName());
  if (!NODE_NAME.test(nodeName)) throw new UsageError(`--node-name "${nodeName}" is not a name (a letter or digit, then up to 63 letters, digits, ".", "_" or "-")`);
  const syncText = values['sync-listen'] ?? env.CARPD_SYNC_LISTEN;
  const syncListen = syncText === undefined || syncText === '' ? undefined : parseListen(syncText, '--sync-listen');
  if (syncListen && syncListen.host === listen.host && syncListen.port === listen.port) {
    throw new UsageError(`--sync-listen ${syncText} is the management address (--listen): the sync listener needs its own, on the sync interface`);
  }
  const metricsText = values['metrics-listen'] ?? env.CARPD_METRICS_LISTEN;
  const metricsListen = metricsText === undefined || metricsText === '' ? undefined : parseListen(metricsText, '--metrics-listen');
  if (metricsListen && metricsListen.port !== 0) {
    const same = (a: { host: string; port: number } | undefined) => a !== undefined && a.host === metricsListen.host && a.port === metricsListen.port;
    if (same(listen)) throw new UsageError(`--metrics-listen ${metricsText} is the management address (--listen): the metrics listener needs its own port`);
    if (same(syncListen)) throw new UsageError(`--metrics-listen ${metricsText} is the sync address (--sync-listen): the metrics listener needs its own port`);
  }
  const tlsCert = values['tls-cert'] ?? (env.CARPD_TLS_CERT || undefined);
  const tlsKey = values['tls-key'] ?? (env.CARPD_TLS_KEY || undefined);
  const selfSigned = values.tls ?? envFlag(env, 'CARPD_TLS');
  const insecureHttp = values['insecure-http'] ?? envFlag(env, 'CARPD_INSECURE_HTTP');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new UsageError(tlsCert === undefined ? '--tls-key needs --tls-cert FILE (CARPD_TLS_CERT): the certificate of that key' : '--tls-cert needs --tls-key FILE (CARPD_TLS_KEY): the private key of that certificate');
  }
  const apiTls: DaemonOptions['apiTls'] = tlsCert !== undefined && tlsKey !== undefined ? { certFile: path.resolve(tlsCert), keyFile: path.resolve(tlsKey) } : selfSigned ? 'self-signed' : undefined;
  if (apiTls && insecureHttp) throw new UsageError('--insecure-http conflicts with --tls, --tls-cert and --tls-key: choose HTTPS or plain HTTP');
  if (!apiTls && !insecureHttp && !isLoopbackHost(listen.host)) {
    throw new UsageError(
      `--listen ${values.listen ?? env.CARPD_LISTEN} is not a loopback address, and the management API would be plain HTTP there: ` +
        'tokens and CARP passwords would cross the network in clear. Add --tls (HTTPS with a self-signed certificate made on first start; ' +
        "carpctl pins its fingerprint), or --tls-cert FILE --tls-key FILE, or --insecure-http if plain HTTP on this address is really meant",
    );
  }
  const macModeText = values['mac-mode'] ?? (env.CARPD_MAC_MODE || undefined);
  if (macModeText !== undefined && !MAC_MODES.includes(macModeText as MacMode)) throw new UsageError(`--mac-mode "${macModeText}" is not virtual or interface`);
  const macMode = macModeText as MacMode | undefined;
  if (macMode === 'interface' && backend === 'freebsd') {
    throw new UsageError('--mac-mode interface: carp(4) on FreeBSD always answers with the virtual MAC 00:00:5e:00:01:<vhid>; leave --mac-mode out (or say virtual) with --backend freebsd');
  }
  const accessLogText = values['access-log'] ?? (env.CARPD_ACCESS_LOG || 'on');
  if (accessLogText !== 'on' && accessLogText !== 'off') throw new UsageError(`--access-log "${accessLogText}" is not on or off`);
  return {
    ...(syncListen ? { syncListen } : {}),
    ...(metricsListen ? { metricsListen } : {}),
    ...(apiTls ? { apiTls } : {}),
    ...(insecureHttp ? { insecureHttp } : {}),
    ...(macMode ? { macMode } : {}),
    accessLog: accessLogText === 'on',
    listenHost: listen.host,
    listenPort: listen.port,
    stateDir: path.resolve(values['state-dir'] ?? env.CARPD_STATE_DIR ?? defaultStateDir()),
    configFile: configFile === undefined || configFile === '' ? undefined : path.resolve(configFile),
    backend,
    logLevel,
    simGroup,
    nodeName,
  };
}
