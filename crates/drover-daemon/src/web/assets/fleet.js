// The fleet view: five columns (Needs input, Working, Verifying, Completed, Failed) of task
// cards, live from `GET /v1/fleet/events` (one `snapshot` event per change: a FleetSnapshot).
// Every text goes in through el()/textContent, never as HTML.
import { el } from './api.js';
import { ACTIVE, oneLine, tickElapsed, usd, elapsed } from './format.js';

export const COLUMNS = [
  ['needs_input', 'Needs input'],
  ['working', 'Working'],
  ['verifying', 'Verifying'],
  ['completed', 'Completed'],
  ['failed', 'Failed'],
];

export async function render(main) {
  const status = el('p', { class: 'status', id: 'fleet-status' }, 'Connecting…');
  const board = el('div', { class: 'board', id: 'fleet' });
  main.append(status, board);
  const cols = {};
  for (const [group, label] of COLUMNS) {
    const count = el('span', { class: 'count', 'data-count': group }, '0');
    const list = el('div', { class: 'cards' });
    board.append(el('section', { class: `column col-${group}`, 'data-group': group },
      el('h2', {}, label, ' ', count), list));
    cols[group] = { count, list };
  }

  // Cards are kept by id and remade only when their data changed; a column's children are
  // touched only when its list changed (a card under the pointer is not replaced for nothing).
  let made = new Map(); // id → { key, node }
  const draw = (snap) => {
    const by = Object.fromEntries(COLUMNS.map(([g]) => [g, []]));
    const next = new Map();
    for (const c of snap.cards) {
      const key = JSON.stringify(c);
      const old = made.get(c.id);
      const node = old && old.key === key ? old.node : card(c);
      next.set(c.id, { key, node });
      (by[c.group] || by.failed).push(node);
    }
    made = next;
    for (const [group] of COLUMNS) {
      const { count, list } = cols[group];
      const nodes = by[group];
      count.textContent = String(nodes.length);
      count.classList.toggle('hot', nodes.length > 0);
      const now = [...list.children];
      const same = nodes.length
        ? now.length === nodes.length && nodes.every((n, i) => now[i] === n)
        : now.length === 1 && now[0].classList.contains('empty');
      if (!same) list.replaceChildren(...(nodes.length ? nodes : [el('p', { class: 'empty' }, '—')]));
    }
    const when = new Date(snap.generated_at).toLocaleTimeString();
    const omitted = snap.finished_omitted ? ` · ${snap.finished_omitted} older finished tasks not shown` : '';
    status.textContent = `${snap.cards.length} tasks · live · updated ${when}${omitted}`;
    status.dataset.version = String(snap.version);
    status.classList.remove('error');
    // For the benchmark (scripts/bench-web.sh): when the first cards were on the page.
    if (!performance.getEntriesByName('drover:fleet-cards').length) performance.mark('drover:fleet-cards');
  };

  const es = new EventSource('/v1/fleet/events', { withCredentials: true });
  es.addEventListener('snapshot', (e) => {
    try { draw(JSON.parse(e.data)); } catch (err) { status.textContent = `Bad snapshot: ${err.message}`; }
  });
  es.onerror = () => {
    status.textContent = es.readyState === EventSource.CLOSED
      ? 'Disconnected (reload the page; the session may have ended).'
      : 'Reconnecting…';
    status.classList.add('error');
  };
  const tick = setInterval(() => tickElapsed(board), 1000);
  return () => { clearInterval(tick); es.close(); };
}

// One task's card; a link to its page.
function card(c) {
  const active = ACTIVE.has(c.state);
  const start = c.started_at || c.created_at;
  const time = el('span', {
    class: 'elapsed', title: 'elapsed',
    'data-start': start, 'data-end': active ? null : (c.finished_at || c.created_at),
  }, elapsed(start, active ? null : c.finished_at));
  const agent = c.model ? `${c.agent} · ${c.model}` : c.agent;
  return el('a', {
    class: `card state-${c.state}${c.group === 'needs_input' ? ' needs-input' : ''}`,
    href: `#/task/${encodeURIComponent(c.id)}`,
    'data-id': c.id, 'data-state': c.state,
  },
  el('div', { class: 'card-top' },
    el('span', { class: 'name' }, c.name || c.id),
    el('span', { class: `badge state-${c.state}` }, c.state.replace('_', ' '))),
  el('div', { class: 'meta' }, el('span', { class: 'repo', title: c.repo }, shortRepo(c.repo))),
  el('div', { class: 'meta' }, el('span', { class: 'agent' }, agent), time,
    el('span', { class: 'cost' }, usd(c.cost_usd))),
  c.last_line ? el('div', { class: 'last-line', title: c.last_line }, oneLine(c.last_line, 200)) : null,
  c.error_kind && !active ? el('div', { class: 'err-kind' }, c.error_kind) : null);
}

function shortRepo(r) {
  const s = String(r || '');
  const parts = s.replace(/\/+$/, '').replace(/\.git$/, '').split('/');
  return parts.length > 2 ? parts.slice(-2).join('/') : s;
}
