// The pools and batches view: each pool's slots, running tasks, failure streak, successes and
// failures, cost and state (stop / resume buttons), and each batch's repositories, slots,
// states, pull requests and cost. Refreshed every few seconds from /v1/pools and /v1/batches.
import { get, post, el } from './api.js';

const REFRESH_MS = 3000;

const usd = (x) => (typeof x === 'number' ? `$${x.toFixed(x < 1 ? 4 : 2)}` : '—');

function table(cls, head, rows) {
  return el('table', { class: cls },
    el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

function poolRows(pools, reload) {
  return pools.map((p) => {
    const act = async (what) => {
      if (what === 'stop' && !confirm(`Stop pool ${p.name}? Running tasks finish; no new ones start.`)) return;
      try { await post(`/v1/pools/${encodeURIComponent(p.name)}/${what}`, {}); } catch (e) { alert(e.message); }
      reload();
    };
    // Running: stop it. Stopped by a person or by its failure streak: resume it. Done: nothing.
    const button = p.state === 'running'
      ? el('button', { type: 'button', class: 'stop', 'data-pool': p.name, onclick: () => act('stop') }, 'Stop')
      : ['stopped', 'failed'].includes(p.state)
        ? el('button', { type: 'button', class: 'resume', 'data-pool': p.name, onclick: () => act('resume') }, 'Resume')
        : null;
    return el('tr', { 'data-pool': p.name },
      el('td', { class: 'name' }, p.name),
      el('td', { class: `state ${p.state}` }, p.state),
      el('td', { class: 'num slots' }, String(p.slots)),
      el('td', { class: 'num running' }, String(p.running)),
      el('td', { class: 'num streak' }, `${p.streak} / ${p.max_failures}`),
      el('td', { class: 'num successes' }, String(p.successes)),
      el('td', { class: 'num failures' }, String(p.failures)),
      el('td', { class: 'num cost' }, usd(p.total_cost_usd)),
      el('td', {}, button));
  });
}

function batchRows(batches) {
  return batches.map((b) => {
    const repos = el('details', {},
      el('summary', {}, `${b.tasks} repositories`),
      el('ul', {}, (b.repos || []).map((r) => el('li', {},
        el('span', { class: 'repo' }, r.repo), ' ',
        el('a', { href: `#/task/${encodeURIComponent(r.task)}` }, r.state), ' ',
        r.pr ? el('a', { href: r.pr.url, rel: 'noreferrer', target: '_blank' }, `PR #${r.pr.number} (${r.pr.state})`) : null,
        ' ', usd(r.cost_usd)))));
    return el('tr', { 'data-batch': b.name },
      el('td', { class: 'name' }, b.name),
      el('td', { class: `state ${b.state}` }, b.state),
      el('td', {}, repos),
      el('td', { class: 'num slots' }, b.slots == null ? '—' : String(b.slots)),
      el('td', { class: 'num running' }, String(b.running)),
      el('td', { class: 'num succeeded' }, String(b.succeeded)),
      el('td', { class: 'num failed' }, String(b.failed)),
      el('td', { class: 'num prs' }, String((b.repos || []).filter((r) => r.pr).length)),
      el('td', { class: 'num cost' }, usd(b.cost_usd)));
  });
}

export async function render(main) {
  const box = el('div', { class: 'pools-view' });
  main.append(box);
  let stopped = false;
  async function load() {
    if (stopped) return;
    try {
      const [pools, batches] = await Promise.all([get('/v1/pools'), get('/v1/batches')]);
      box.replaceChildren(
        el('h2', {}, 'Pools'),
        pools.length
          ? table('pools', ['Pool', 'State', 'Slots', 'Running', 'Streak', 'Successes', 'Failures', 'Cost', ''], poolRows(pools, load))
          : el('p', { class: 'empty' }, 'No pools.'),
        el('h2', {}, 'Batches'),
        batches.length
          ? table('batches', ['Batch', 'State', 'Repositories', 'Slots', 'Running', 'Succeeded', 'Failed', 'PRs', 'Cost'], batchRows(batches))
          : el('p', { class: 'empty' }, 'No batches.'));
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error' }, e.message));
    }
  }
  await load();
  const timer = setInterval(load, REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); };
}
