// carpd's status page: a browser ES module, no dependencies. The token is asked for once and
// kept in sessionStorage (this tab only), sent in the Authorization header, never in a URL.
// The view is built from GET /v1/cluster (or /v1/status on a node without sync), /v1/sync,
// /v1/tracks and /v1/cluster/diagnostics; it is refreshed on each event of GET /v1/events
// (read with fetch, since EventSource cannot send a header) and every few seconds anyway.

const KEY = 'carpd.token';
const POLL_MS = 5000;
const MAX_EVENTS = 50;
const STATE_ICON = { MASTER: '\u25B2', BACKUP: '\u25BD', INIT: '\u25C7', UNREACHABLE: '\u2715', up: '\u2714', down: '\u2715', unknown: '?' };

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(KEY);
let lastEventId = 0;
let stream;
let pollTimer;
let refreshQueued;
let refreshing = false;
let again = false;
/** The peer's name as last heard: an unreachable peer comes without one. */
let peerName = null;

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** A state as text plus a shape, coloured too but never told by colour alone. */
function badge(state, label = state) {
  return h('span', { class: `badge s-${state}`, 'data-state': state }, h('span', { class: 'icon', 'aria-hidden': 'true' }, STATE_ICON[state] ?? '\u25CF'), label);
}

function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, `${d.toLocaleString()} (${ago(iso)})`);
}

class Unauthorized extends Error {}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { Accept: 'application/json', ...init.headers, Authorization: `Bearer ${token}` }, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized('the token was refused');
  if (res.status === 429) throw new Error('too many refused tokens from this address; carpd answers again in a minute');
  return res;
}

async function getJson(path) {
  const res = await api(path);
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

// --- sign in / out ---------------------------------------------------------------------------

function showLogin(message = '') {
  stop();
  token = null;
  sessionStorage.removeItem(KEY);
  $('view').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('conn').textContent = 'Not signed in.';
  $('token').value = '';
  $('token').focus();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const value = $('token').value.trim();
  if (value === '') return;
  token = value;
  try {
    await api('/v1/status');
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin('That token was refused. Check it and try again.');
    $('login-error').textContent = `carpd could not be reached: ${err.message}`;
    return;
  }
  sessionStorage.setItem(KEY, value);
  $('token').value = '';
  start();
});

$('signout').addEventListener('click', () => showLogin('Token forgotten.'));

function start() {
  $('login').hidden = true;
  $('view').hidden = false;
  $('signout').hidden = false;
  refresh();
  clearInterval(pollTimer);
  pollTimer = setInterval(refresh, POLL_MS);
  loadRecent().finally(openStream);
}

function stop() {
  clearInterval(pollTimer);
  pollTimer = undefined;
  stream?.abort();
  stream = undefined;
}

function fail(err) {
  if (err instanceof Unauthorized) showLogin('The token was refused (revoked or mistyped). Enter it again.');
  else $('conn').textContent = `carpd could not be reached: ${err.message}. Retrying.`;
}

// --- the view ----------------------------------------------------------------------------------

/** One refresh at a time; a request for another while one runs makes one more afterwards. */
async function refresh() {
  if (!token) return;
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    const [cluster, status, sync, tracks, doctor] = await Promise.all(['/v1/cluster', '/v1/status', '/v1/sync', '/v1/tracks', '/v1/cluster/diagnostics'].map(getJson));
    render(cluster, status, sync, tracks, doctor);
    if (!stream) await loadRecent(); // the stream is down: the events by polling meanwhile
    $('updated').replaceChildren(when(new Date().toISOString()));
  } catch (err) {
    fail(err);
  } finally {
    refreshing = false;
    if (again && token) {
      again = false;
      refresh();
    }
  }
}

/** Refreshes shortly after an event (events come in bursts: one refresh for a burst). */
function refreshSoon() {
  clearTimeout(refreshQueued);
  refreshQueued = setTimeout(refresh, 150);
}

function render(cluster, status, sync, tracks, doctor) {
  const self = status.status === 200 ? status.body : null;
  let nodes;
  let splitBrain = [];
  if (cluster.status === 200) {
    nodes = cluster.body.nodes;
    splitBrain = cluster.body.splitBrain ?? [];
  } else if (self) {
    // No config sync here: this node alone.
    nodes = [{ self: true, reachable: true, error: null, node: self.node, role: 'standalone', revision: self.revision, carp: self.carp, vhids: self.vhids, pf: self.pf, pfsync: self.pfsync }];
  } else {
    nodes = [];
  }
  for (const n of nodes) if (!n.self && n.node) peerName = n.node;
  nodes = nodes.map((n) => (!n.self && !n.node ? { ...n, node: peerName ?? 'peer', nameUnknown: peerName === null } : n));
  nodes = [...nodes].sort((a, b) => String(a.node).localeCompare(String(b.node)));
  $('nodes').replaceChildren(...nodes.map((n) => renderNode(n, n.self ? self : null)));

  const alerts = [];
  for (const s of splitBrain) alerts.push(h('p', { class: 'alert' }, badge('SPLIT', 'SPLIT BRAIN'), ` ${s.interface} vhid ${s.vhid} is MASTER on both nodes since `, when(s.since)));
  if (cluster.status !== 200 && cluster.status !== 409) alerts.push(h('p', { class: 'alert' }, `GET /v1/cluster answered ${cluster.status}: ${cluster.body?.detail ?? ''}`));
  $('alerts').replaceChildren(...alerts);

  $('sync-body').replaceChildren(renderSync(sync, nodes.find((n) => !n.self)));
  $('tracks-body').replaceChildren(renderTracks(tracks));
  $('doctor-body').replaceChildren(renderDoctor(doctor));
  const down = nodes.filter((n) => !n.reachable).map((n) => n.node ?? 'the peer');
  $('conn').textContent = `${stream ? 'Live' : 'Polling'}${down.length ? ` \u2014 ${down.join(', ')} unreachable` : ''}.`;
}

function renderNode(n, self) {
  const name = n.node ?? '(unknown)';
  const head = h(
    'header',
    {},
    h('h3', {}, name),
    n.reachable ? badge('up', 'REACHABLE') : badge('UNREACHABLE'),
    h('span', { class: 'tag' }, [n.role, n.self ? 'this node' : n.reachable ? 'peer' : 'peer, as last heard'].filter(Boolean).join(' \u00B7 ')),
  );
  const el = h('article', { class: `node ${n.reachable ? 'up' : 'down'}`, 'data-node': name, 'aria-label': `node ${name}` }, head);
  if (!n.reachable) {
    el.append(h('p', { class: 'error' }, n.error ?? 'not reachable'));
    return el;
  }
  const carp = (self?.carp ?? n.carp) || {};
  const contributors = (self?.carp?.contributors ?? []).filter((c) => c.value !== 0);
  const facts = [
    ['CARP', carp.enabled === undefined ? '\u2014' : carp.enabled ? 'enabled' : 'disabled'],
    ['Preempt', carp.preempt === undefined ? '\u2014' : carp.preempt ? 'on' : 'off'],
    ['Maintenance', carp.maintenance ? badge('warning', 'MAINTENANCE') : 'off'],
    ['Demotion', `${carp.demotion ?? '\u2014'}${contributors.length ? ` (${contributors.map((c) => `${c.name} ${c.value}`).join(', ')})` : ''}`],
    ['Revision', n.role === 'secondary' && n.appliedRevision !== undefined ? `${n.revision ?? '\u2014'} (primary's ${n.appliedRevision} applied)` : `${n.revision ?? '\u2014'}`],
  ];
  if (n.pfsync?.enabled) facts.push(['pfsync', `${n.pfsync.running ? 'running' : 'stopped'} on ${n.pfsync.syncdev ?? '\u2014'}${n.pfsync.syncpeer ? ` to ${n.pfsync.syncpeer}` : ''}, bulk update ${n.pfsync.bulkUpdateDone ? 'done' : 'pending'}`]);
  if (n.pf) facts.push(['pf states', String(n.pf.states)]);
  el.append(h('dl', {}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  const vhids = n.vhids ?? [];
  if (vhids.length === 0) {
    el.append(h('p', { class: 'muted' }, 'No vhids.'));
    return el;
  }
  el.append(
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', { class: 'muted' }, `vhids of ${name}`),
        h('thead', {}, h('tr', {}, ['Interface', 'vhid', 'State', 'Since', 'Reason'].map((c) => h('th', { scope: 'col' }, c)))),
        h(
          'tbody',
          {},
          vhids.map((v) =>
            h('tr', { 'data-vhid': `${v.interface}/${v.vhid}` }, h('td', {}, v.interface), h('td', {}, v.vhid), h('td', { class: 'state' }, badge(v.state)), h('td', {}, v.since ? when(v.since) : '\u2014'), h('td', {}, v.reason ?? '')),
          ),
        ),
      ),
    ),
  );
  return el;
}

function renderSync(sync, peer) {
  if (sync.status !== 200) return h('p', { class: 'muted' }, sync.body?.detail ?? `not available (${sync.status})`);
  const s = sync.body;
  if (s.role === 'standalone') return h('p', { class: 'muted' }, 'Standalone: no config sync.');
  let lag = s.lag ?? {};
  let ok = s.lastError === null && !s.pending;
  if (s.role === 'secondary') {
    // The secondary's own lag is unknown to it: the primary's revision (from GET /v1/cluster) against the one applied here.
    const known = peer?.reachable && typeof peer.revision === 'number' && typeof s.peerRevision === 'number';
    lag = known ? { revisions: Math.max(0, peer.revision - s.peerRevision), seconds: null } : { revisions: null, seconds: null };
    ok = known && lag.revisions === 0;
  }
  return h(
    'dl',
    {},
    h('dt', {}, 'Status'),
    h('dd', {}, ok ? badge('ok', 'IN SYNC') : s.lastError ? badge('error', 'ERROR') : lag.revisions === null ? badge('unknown', 'UNKNOWN') : badge('pending', 'PENDING')),
    h('dt', {}, 'Role'),
    h('dd', {}, s.role),
    h('dt', {}, 'Peer'),
    h('dd', {}, s.peer ? `${s.peer.address}:${s.peer.port}` : '\u2014'),
    h('dt', {}, 'Lag'),
    h('dd', {}, lag.revisions === null || lag.revisions === undefined ? 'unknown' : `${lag.revisions} revision${lag.revisions === 1 ? '' : 's'}${lag.seconds ? `, ${lag.seconds} s` : ''}`),
    h('dt', {}, 'Revisions'),
    h('dd', {}, `here ${s.localRevision}, peer ${s.peerRevision ?? '\u2014'}`),
    s.role === 'primary' ? [h('dt', {}, 'Last push'), h('dd', {}, when(s.lastSuccess))] : [],
    s.lastError ? [h('dt', {}, 'Last error'), h('dd', { class: 'error' }, s.lastError)] : [],
    (s.detached ?? []).length ? [h('dt', {}, 'Detached'), h('dd', {}, s.detached.map((d) => (typeof d === 'string' ? d : JSON.stringify(d))).join(', '))] : [],
  );
}

function renderTracks(tracks) {
  if (tracks.status !== 200) return h('p', { class: 'muted' }, `not available (${tracks.status})`);
  const items = tracks.body.items ?? tracks.body.tracks ?? [];
  if (items.length === 0) return h('p', { class: 'muted' }, 'No health tracks.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, ['Track', 'State', 'Since', 'Reason', 'Demotion'].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        items.map((t) => h('tr', { 'data-track': t.name }, h('td', {}, t.name), h('td', {}, badge(t.status?.state ?? 'unknown', (t.status?.state ?? 'unknown').toUpperCase())), h('td', {}, when(t.status?.since)), h('td', {}, t.status?.reason ?? ''), h('td', {}, t.status?.demotion ?? 0))),
      ),
    ),
  );
}

const SEVERITY_ORDER = ['critical', 'error', 'warning', 'info'];

function renderDoctor(doctor) {
  if (doctor.status === 404) return h('p', { class: 'muted', 'data-doctor': 'unavailable' }, 'Doctor not available on this carpd.');
  if (doctor.status !== 200) return h('p', { class: 'muted', 'data-doctor': 'error' }, `Doctor: ${doctor.body?.detail ?? `answered ${doctor.status}`}`);
  const findings = [...(doctor.body.findings ?? [])].sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
  const notChecked = (doctor.body.checks ?? []).filter((c) => c.status === 'not-checked' || c.status === 'not_checked' || c.checked === false);
  const out = h('div', { 'data-doctor': 'available' });
  if (findings.length === 0) out.append(h('p', {}, badge('ok', 'HEALTHY'), ' No findings.'));
  else
    out.append(
      h(
        'ul',
        { class: 'findings' },
        findings.map((f) =>
          h(
            'li',
            { 'data-code': f.code },
            badge(f.severity, String(f.severity).toUpperCase()),
            ' ',
            h('strong', {}, f.code),
            f.objects?.length ? h('span', { class: 'muted' }, ` \u2014 ${f.objects.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))).join(', ')}`) : '',
            f.fix ? h('div', {}, `Fix: ${f.fix}`) : '',
            f.evidence ? h('div', { class: 'muted' }, `Evidence: ${typeof f.evidence === 'string' ? f.evidence : JSON.stringify(f.evidence)}`) : '',
          ),
        ),
      ),
    );
  if (notChecked.length) out.append(h('p', { class: 'muted' }, `Not checked: ${notChecked.map((c) => c.name ?? c.code ?? JSON.stringify(c)).join(', ')}`));
  return out;
}

// --- events --------------------------------------------------------------------------------------

function showEvent(e) {
  if (typeof e.id === 'number') {
    if (e.id <= lastEventId) return; // already shown
    lastEventId = e.id;
  }
  const list = $('events-list');
  const data = e.data === undefined ? '' : JSON.stringify(e.data);
  list.prepend(h('li', { 'data-type': e.type }, e.time ? h('time', { datetime: e.time }, new Date(e.time).toLocaleTimeString()) : h('span'), h('span', { class: 'type' }, e.type), h('span', { class: 'data' }, data.length > 300 ? `${data.slice(0, 300)}\u2026` : data)));
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

async function loadRecent() {
  try {
    const r = await getJson(`/v1/events/recent?limit=${MAX_EVENTS}${lastEventId ? `&after=${lastEventId}` : ''}`);
    if (r.status !== 200) return;
    for (const e of r.body.events) showEvent(e);
    lastEventId = Math.max(lastEventId, r.body.lastId ?? 0);
  } catch (err) {
    fail(err);
  }
}

/** GET /v1/events read with fetch and parsed here; reopened after a pause when it ends. */
async function openStream() {
  if (!token || stream) return;
  const ctrl = new AbortController();
  stream = ctrl;
  try {
    const res = await api('/v1/events', { signal: ctrl.signal, headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(lastEventId) } });
    if (res.status !== 200 || !res.body) throw new Error(`the events stream answered ${res.status}`);
    $('conn').textContent = 'Live.';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = frame
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data === '') continue; // a keepalive comment
        try {
          showEvent(JSON.parse(data));
        } catch {
          /* not an event */
        }
        refreshSoon();
      }
    }
  } catch (err) {
    if (ctrl.signal.aborted) return;
    if (err instanceof Unauthorized) return fail(err);
  } finally {
    if (stream === ctrl) stream = undefined;
  }
  if (token && !ctrl.signal.aborted) {
    $('conn').textContent = 'Events stream closed; polling, reconnecting.';
    setTimeout(openStream, 3000);
  }
}

if (token) start();
else showLogin();
