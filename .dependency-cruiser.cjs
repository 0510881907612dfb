/**
 * carpd's layers, enforced by `npm test` (scripts/test.sh runs `npm run lint:deps`). The same
 * picture, with the reasons, is docs/architecture.md; change both together.
 *
 *   daemon/, demo/     composition roots: may import anything below
 *   cli/               carpctl: only the generated API types (api/generated/) and paths.ts
 *   api/               HTTP: service/, sync/, config/, wire/ — never kernel/, engine/, runtime/
 *   notify/            hooks and webhooks run on events: service/, config/, wire/
 *   track/             health tracks' probes and runner: service/, config/, wire/
 *   sync/              node-to-node config sync: service/, config/, wire/
 *   service/           the serialized change queue: kernel/, config/, engine/, wire/
 *   kernel/            backends: runtime/, engine/, config/, wire/ (koffi only here)
 *   runtime/           drives the engines: engine/, wire/
 *   engine/            pure state machines: wire/
 *   config/            desired state: wire/
 *   wire/              pure codecs: nothing of ours
 *   errors.ts, clock.ts, paths.ts   shared vocabulary: nothing of ours
 *
 * Each layer may also import the top-level vocabulary (errors.ts, clock.ts, paths.ts), and
 * anything lower than what it lists above is reachable only through the layers in between.
 */
const VOCAB = '^src/(errors|clock|paths)\\.ts$';

/** Each layer (a folder of src/) and the layers it may import; test/architecture.test.ts holds docs/architecture.md to it. */
const LAYERS = {
  wire: [],
  engine: ['wire'],
  config: ['wire'],
  runtime: ['engine', 'wire'],
  kernel: ['runtime', 'engine', 'config', 'wire'],
  service: ['kernel', 'engine', 'config', 'wire'],
  sync: ['service', 'config', 'wire'],
  api: ['service', 'sync', 'config', 'wire'],
  notify: ['service', 'config', 'wire'],
  track: ['service', 'config', 'wire'],
};

/** A rule: files under `from` may import, of src/, only their own folder, `allowed` and VOCAB. */
function layer(name, from, allowed) {
  const ok = [`^src/${from}/`, ...allowed.map((a) => `^src/${a}/`), VOCAB];
  return {
    name: `layer-${name}`,
    comment: `src/${from}/ may import only ${allowed.length ? allowed.map((a) => `${a}/`).join(', ') + ' and ' : ''}the shared vocabulary (docs/architecture.md)`,
    severity: 'error',
    from: { path: `^src/${from}/` },
    to: { path: '^src/', pathNot: ok },
  };
}

module.exports = {
  forbidden: [
    {
      name: 'vocabulary-imports-nothing',
      comment: 'errors.ts, clock.ts and paths.ts are the bottom layer: they import nothing of ours',
      severity: 'error',
      from: { path: VOCAB },
      to: { path: '^src/', pathNot: VOCAB },
    },
    ...Object.entries(LAYERS).map(([name, allowed]) => layer(name, name, allowed)),
    {
      name: 'layer-cli',
      comment: 'carpctl speaks HTTP: of the server it knows only the generated API types',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/', pathNot: ['^src/cli/', '^src/api/generated/', VOCAB] },
    },
    {
      name: 'backends-apart',
      comment: 'the freebsd and linux backends share code only through kernel/ itself or the layers below',
      severity: 'error',
      from: { path: '^src/kernel/(freebsd|linux)/' },
      to: { path: '^src/kernel/(freebsd|linux)/', pathNot: '^src/kernel/$1/' },
    },
    {
      name: 'koffi-only-in-kernel',
      comment: 'FFI is a kernel backend detail',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/kernel/' },
      to: { path: 'node_modules/koffi/' },
    },
    {
      name: 'nobody-imports-the-roots',
      comment: 'daemon/ and demo/ wire everything together; nothing depends on them',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(daemon|demo)/' },
      to: { path: '^src/(daemon|demo)/' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles, not even inside one folder',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every import resolves',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'no-dev-deps-in-src',
      comment: 'what src/ imports must be a runtime dependency',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js', '.json'] },
    moduleSystems: ['es6', 'cjs'],
  },
};
