// The task view: a header (state, agent, model, repo, branch, elapsed, cost, usage, outcome,
// PR links), the answer / message / stop controls, and two tabs:
// - Transcript: the newest page of events first (`?before=`), older pages by cursor ("Load
//   older"), then live over the task's SSE stream from the last seq; tool calls folded in
//   <details>, gates with their output, errors visible. The DOM holds at most CAP rows.
// - Diff: the changed files (`/diff`), each file's patch loaded when opened (`/diff/file`).
// Every text goes in through el()/textContent, never as HTML.
import { el, get, post } from './api.js';
import { ACTIVE, elapsed, oneLine, safeHref, tickElapsed, tokens, usd } from './format.js';

export const PAGE = 200;
export const CAP = 2000;
const NEWEST = Number.MAX_SAFE_INTEGER;
const KINDS = ['state', 'text', 'tool_call', 'tool_result', 'needs_input', 'input', 'usage', 'gate',
  'commit', 'error', 'stderr', 'result', 'egress', 'pr'];
// Events after which the header is read again.
const REFRESH = new Set(['state', 'needs_input', 'input', 'result', 'usage', 'commit', 'pr', 'gate', 'error']);

export async function render(main, [id]) {
  const base = `/v1/tasks/${encodeURIComponent(id)}`;
  const head = el('section', { class: 'task-head', id: 'task-head' }, 'Loading…');
  const notice = el('p', { class: 'notice', id: 'task-notice' });
  const tabT = el('button', { class: 'tab active', id: 'tab-transcript', type: 'button' }, 'Transcript');
  const tabD = el('button', { class: 'tab', id: 'tab-diff', type: 'button' }, 'Diff');
  const transcript = el('div', { class: 'pane', id: 'transcript-pane' });
  const diff = el('div', { class: 'pane', id: 'diff-pane', hidden: true });
  main.append(head, notice, el('nav', { class: 'tabs' }, tabT, tabD), transcript, diff);

  let stopped = false;
  let task = null;
  const say = (msg, bad = false) => { notice.textContent = msg; notice.classList.toggle('error', bad); };

  const refresh = async () => {
    try { task = await get(base); drawHead(head, task, controls); } catch (e) { say(`Could not read the task: ${e.message}`, true); }
  };
  let pending = null;
  const refreshSoon = () => { if (!pending) pending = setTimeout(() => { pending = null; if (!stopped) refresh(); }, 250); };

  const act = async (what, body, path = 'send') => {
    try {
      say(`${what}…`);
      task = await post(`${base}/${path}`, body);
      drawHead(head, task, controls);
      say(`${what}: done.`);
    } catch (e) { say(`${what} failed: ${e.message}`, true); }
  };
  const controls = {
    allow: () => act('Allow', { allow: true }),
    deny: () => act('Deny', { deny: true }),
    send: (text) => act('Send', { message: text }),
    stop: () => { if (window.confirm(`Stop task ${id}?`)) act('Stop', {}, 'stop'); },
  };
  const message = el('textarea', { id: 'message', rows: '2', placeholder: 'Send the agent a message…' });
  controls.box = el('div', { class: 'controls', hidden: true },
    el('form', {
      class: 'send', id: 'send-form',
      onsubmit: (e) => { e.preventDefault(); const m = message.value.trim(); if (m) { controls.send(m); message.value = ''; } },
    }, message, el('button', { type: 'submit', id: 'send' }, 'Send')),
    el('button', { type: 'button', id: 'stop', class: 'bad', onclick: () => controls.stop() }, 'Stop'));

  await refresh();
  if (!task) return () => {};
  const log = transcriptView(transcript, base, say, (e) => { if (REFRESH.has(e.kind)) refreshSoon(); });
  let diffLoaded = false;
  tabT.addEventListener('click', () => { show(true); });
  tabD.addEventListener('click', () => { show(false); if (!diffLoaded) { diffLoaded = true; diffView(diff, base, task); } });
  function show(t) {
    tabT.classList.toggle('active', t); tabD.classList.toggle('active', !t);
    transcript.hidden = !t; diff.hidden = t;
  }
  const tick = setInterval(() => tickElapsed(head), 1000);
  log.start();
  return () => { stopped = true; clearInterval(tick); clearTimeout(pending); log.stop(); };
}

function drawHead(head, t, controls) {
  const active = ACTIVE.has(t.state);
  const start = t.started_at || t.created_at;
  const u = t.usage || {};
  const row = (k, ...v) => el('div', { class: 'kv' }, el('span', { class: 'k' }, k), el('span', { class: 'v', 'data-field': k }, ...v));
  const prs = (t.prs || []).map((p) => {
    const href = safeHref(p.url);
    const label = `#${p.number} ${p.state}`;
    return href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'pr' }, label) : el('span', {}, label);
  });
  const outcome = t.outcome
    ? el('div', { class: `outcome ${t.outcome.verdict === 'success' ? 'good' : 'bad'}`, id: 'task-outcome' },
      t.outcome.error_kind ? `${t.outcome.error_kind}: ` : '', t.outcome.reason || t.outcome.verdict)
    : null;
  const pending = t.pending_input ? el('div', { class: 'pending', id: 'pending-input' },
    el('strong', {}, 'Permission asked: '), String(t.pending_input.tool ?? ''), ' ',
    el('code', {}, oneLine(t.pending_input.input === undefined ? '' : JSON.stringify(t.pending_input.input), 300)),
    el('button', { type: 'button', id: 'allow', class: 'good', onclick: controls.allow }, 'Allow'),
    el('button', { type: 'button', id: 'deny', class: 'bad', onclick: controls.deny }, 'Deny')) : null;
  // The message box and Stop are made once (what is typed survives redraws), shown while active.
  controls.box.hidden = !active;
  head.replaceChildren(
    el('h1', {}, t.name || t.id, ' ', el('span', { class: `badge state-${t.state}`, id: 'task-state', 'data-state': t.state }, t.state.replace('_', ' '))),
    el('div', { class: 'grid' },
      row('id', t.id),
      row('agent', t.agent),
      row('model', t.model || '—'),
      row('repo', t.repo),
      row('branch', t.branch),
      row('elapsed', el('span', { 'data-start': start, 'data-end': active ? null : (t.finished_at || null) }, elapsed(start, active ? null : t.finished_at))),
      row('cost', usd(t.cost_usd) || '—'),
      row('tokens', `in ${tokens(u.input_tokens)} · out ${tokens(u.output_tokens)} · cache read ${tokens(u.cache_read_tokens)} · write ${tokens(u.cache_write_tokens)}`),
      prs.length ? row('PRs', ...prs) : null),
    ...[outcome, pending, controls.box].filter(Boolean));
}

// The transcript: rows keyed by seq, newest page first, older by cursor, then live.
function transcriptView(pane, base, say, onEvent) {
  const older = el('button', { type: 'button', id: 'load-older', class: 'older', hidden: true }, 'Load older');
  const rows = el('div', { class: 'transcript', id: 'transcript' });
  const live = el('p', { class: 'live', id: 'live-state' });
  const jump = el('button', { type: 'button', id: 'jump-newest', hidden: true }, 'Newer events hidden: show the newest');
  pane.append(older, rows, jump, live);
  let first = null; // the oldest seq shown
  let last = 0;     // the newest seq shown (or received)
  let detached = false; // loaded far back: newest rows dropped, live paused
  let es = null;
  const tools = new Map(); // tool_use id → the <details> of its call

  const atBottom = () => rows.scrollHeight - rows.scrollTop - rows.clientHeight < 40;
  const append = (evs) => {
    if (!evs.length) return;
    const stick = atBottom();
    for (const e of evs) { if (e.seq > last) { const r = row(e, tools); if (r) rows.append(r); last = e.seq; } }
    if (first === null) first = evs[0].seq;
    trim();
    if (stick) rows.scrollTop = rows.scrollHeight;
  };
  // Keep at most CAP rows: drop the oldest (Load older fetches them again).
  const trim = () => {
    let extra = rows.childElementCount - CAP;
    while (extra-- > 0) rows.firstElementChild.remove();
    const top = rows.firstElementChild;
    if (top) first = Number(top.dataset.seq);
    older.hidden = !(first > 1);
  };

  const page = async (before) => {
    try { return await get(`${base}/events?before=${before}&limit=${PAGE}`); } catch (e) {
      if (before !== NEWEST) throw e;
      // A daemon without `before`: the first events (small tasks).
      return get(`${base}/events?after=0&limit=1000`);
    }
  };

  const loadOlder = async () => {
    if (!(first > 1)) return;
    older.disabled = true;
    try {
      const evs = await page(first);
      const h = rows.scrollHeight;
      const frag = document.createDocumentFragment();
      for (const e of evs) { const r = row(e, tools); if (r) frag.append(r); }
      rows.prepend(frag);
      first = evs.length ? evs[0].seq : 1;
      if (!evs.length) first = 1;
      // Too many rows: drop the newest, pause live until the reader asks for the newest again.
      let extra = rows.childElementCount - CAP;
      if (extra > 0) { detached = true; jump.hidden = false; }
      while (extra-- > 0) rows.lastElementChild.remove();
      rows.scrollTop += rows.scrollHeight - h;
      older.hidden = !(first > 1);
    } catch (e) { say(`Could not load older events: ${e.message}`, true); } finally { older.disabled = false; }
  };
  older.addEventListener('click', loadOlder);

  const follow = () => {
    if (es) es.close();
    es = new EventSource(`${base}/events?after=${last}`, { withCredentials: true });
    live.textContent = 'Following live…';
    const on = (ev) => {
      let e;
      try { e = JSON.parse(ev.data); } catch { return; }
      if (!detached) append([e]); else last = Math.max(last, e.seq);
      onEvent(e);
    };
    for (const k of KINDS) es.addEventListener(k, on);
    es.addEventListener('end', (ev) => {
      let state = '';
      try { state = JSON.parse(ev.data).state; } catch { /* shown without */ }
      live.textContent = `The task ended (${state}).`;
      es.close();
      onEvent({ kind: 'state' });
    });
    es.onerror = () => { if (es.readyState !== EventSource.CLOSED) live.textContent = 'Reconnecting…'; };
  };

  const start = async () => {
    rows.replaceChildren(); tools.clear(); first = null; last = 0; detached = false; jump.hidden = true;
    try {
      const evs = await page(NEWEST);
      append(evs);
      if (!evs.length) first = 1;
      older.hidden = !(first > 1);
      rows.scrollTop = rows.scrollHeight;
      // For the benchmark (scripts/bench-web.sh): when the newest rows were on the page.
      if (!performance.getEntriesByName('drover:transcript').length) performance.mark('drover:transcript');
    } catch (e) { say(`Could not read the events: ${e.message}`, true); }
    follow();
  };
  jump.addEventListener('click', start);
  return { start, stop: () => { if (es) es.close(); } };
}

// One event as a row (null: not shown, e.g. usage).
function row(e, tools) {
  const d = e.data || {};
  const r = (cls, ...kids) => el('div', { class: `ev ev-${e.kind} ${cls}`.trim(), 'data-seq': String(e.seq), 'data-kind': e.kind, title: `#${e.seq} ${e.ts}` }, ...kids);
  switch (e.kind) {
    case 'text': return r('', el('div', { class: 'text' }, String(d.text ?? '')));
    case 'tool_call': {
      const det = el('details', { class: 'tool' },
        el('summary', {}, '→ ', el('strong', {}, String(d.name ?? 'tool')), ' ', oneLine(d.input === undefined ? '' : JSON.stringify(d.input), 160)),
        el('pre', { class: 'input' }, JSON.stringify(d.input ?? null, null, 2)));
      const row_ = r('', det);
      if (d.id) tools.set(d.id, det);
      return row_;
    }
    case 'tool_result': {
      const content = typeof d.content === 'string' ? d.content : JSON.stringify(d.content ?? null, null, 2);
      const det = d.id ? tools.get(d.id) : null;
      const out = el('pre', { class: `result${d.is_error ? ' bad' : ''}` }, content);
      if (det) {
        det.append(el('div', { class: 'k' }, d.is_error ? 'result (error)' : 'result'), out);
        if (d.is_error) det.classList.add('bad');
        return r('folded', el('span', { class: 'muted' }, `← result of ${det.querySelector('strong').textContent}${d.is_error ? ' (error)' : ''}`));
      }
      return r('', el('details', { class: 'tool' }, el('summary', {}, '← ', oneLine(content, 160)), out));
    }
    case 'state': return r('muted', `● ${d.state ?? ''}${d.reason ? ` (${oneLine(d.reason, 200)})` : ''}`);
    case 'needs_input': return r('warn', '? permission asked for ', el('strong', {}, String(d.tool ?? '')), ' ', el('code', {}, oneLine(JSON.stringify(d.input ?? null), 300)));
    case 'input':
      if (d.behavior) return r('muted', `> ${d.behavior} (by ${d.by ?? '?'})`);
      if (d.cancelled) return r('muted', '> request withdrawn');
      if (d.stop) return r('muted', `■ stop: ${d.stop} (by ${d.by ?? '?'})`);
      return r('input', `> ${d.message ?? ''}`);
    case 'usage': return null;
    case 'gate': {
      const ok = d.passed === true;
      return r(ok ? 'good' : 'bad', el('details', { class: 'gate', open: !ok },
        el('summary', {}, `⚑ gate ${d.command ?? ''} → ${d.exit_code === null || d.exit_code === undefined ? 'no exit' : `exit ${d.exit_code}`} ${ok ? 'passed' : 'failed'}${d.duration_ms ? ` in ${(d.duration_ms / 1000).toFixed(1)}s` : ''}`),
        el('pre', {}, String(d.output_tail ?? '')),
        d.protect && d.protect.error ? el('p', { class: 'bad' }, String(d.protect.error)) : null));
    }
    case 'commit': return r('muted', `⎇ committed ${String(d.commit ?? '').slice(0, 12)} on ${d.branch ?? ''}`);
    case 'error': return r('bad', `! ${d.message ?? JSON.stringify(d)}`);
    case 'stderr': return r('stderr', String(d.line ?? ''));
    case 'result': return r('good', `✓ result${typeof d.cost_usd === 'number' ? ` (${usd(d.cost_usd)})` : ''}: `, el('span', { class: 'text' }, String(d.result ?? '')));
    case 'egress': return r('muted', `⇄ egress ${d.authority ?? ''} ${d.verdict ?? ''}`);
    case 'pr': {
      const href = safeHref(d.url);
      const label = `#${d.number ?? ''} ${d.state ?? ''}`;
      return r('', `⇡ pull request ${d.opened ? 'opened' : 'found'} `, href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, label) : label);
    }
    default: return r('muted', `${e.kind}: ${oneLine(JSON.stringify(d), 300)}`);
  }
}

// The diff tab: the file list, each patch fetched the first time its file is opened.
async function diffView(pane, base) {
  pane.replaceChildren(el('p', { class: 'muted' }, 'Loading the diff…'));
  let d;
  try { d = await get(`${base}/diff`); } catch (e) { pane.replaceChildren(el('p', { class: 'error' }, `No diff: ${e.message}`)); return; }
  const files = d.files || [];
  const added = files.reduce((a, f) => a + (f.added || 0), 0);
  const removed = files.reduce((a, f) => a + (f.removed || 0), 0);
  const against = d.base_commit ? ` against ${d.base_commit.slice(0, 12)}` : '';
  const at = d.commit ? ` (commit ${d.commit.slice(0, 12)})` : ' (live sandbox)';
  pane.replaceChildren(el('p', { class: 'diff-summary', id: 'diff-summary' },
    `${files.length} file${files.length === 1 ? '' : 's'} changed${against}${at}: `,
    el('span', { class: 'add' }, `+${added}`), ' ', el('span', { class: 'del' }, `−${removed}`)));
  if (!files.length) { pane.append(el('p', { class: 'muted' }, 'No changes.')); return; }
  for (const f of files) {
    const body = el('div', { class: 'patch' });
    const name = f.repo_dir ? `${f.repo_dir}: ${f.path}` : f.path;
    const det = el('details', { class: 'file', 'data-path': f.path },
      el('summary', {}, el('span', { class: `st st-${f.status}` }, f.status), ' ', name,
        f.old_path ? ` (from ${f.old_path})` : '', ' ',
        f.binary ? el('span', { class: 'muted' }, 'binary') : [el('span', { class: 'add' }, `+${f.added}`), ' ', el('span', { class: 'del' }, `−${f.removed}`)]),
      body);
    let loaded = false;
    det.addEventListener('toggle', async () => {
      if (!det.open || loaded) return;
      loaded = true;
      body.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
      const q = new URLSearchParams({ path: f.path });
      if (f.repo_dir) q.set('repo_dir', f.repo_dir);
      try { body.replaceChildren(...patch(await get(`${base}/diff/file?${q}`))); } catch (e) {
        loaded = false;
        body.replaceChildren(el('p', { class: 'error' }, `Could not load the patch: ${e.message}`));
      }
    });
    pane.append(det);
  }
}

function patch(p) {
  const pre = el('pre', { class: 'diff' });
  for (const line of String(p.patch ?? '').split('\n')) {
    let cls = '';
    if (line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ') || line.startsWith('index ')) cls = 'meta';
    else if (line.startsWith('+')) cls = 'add';
    else if (line.startsWith('-')) cls = 'del';
    else if (line.startsWith('@@')) cls = 'hunk';
    pre.append(el('span', { class: `line ${cls}`.trim() }, line), '\n');
  }
  const out = [pre];
  if (p.truncated) out.unshift(el('p', { class: 'warn truncated' }, `This patch is cut: ${p.bytes} bytes in all, only the start is shown.`));
  return out;
}
