// The cost view: dollars and tokens per day, model, team, pool and tag (GET /v1/usage?by=…) as
// SVG bar charts drawn here (no chart library), and each budget's burn-down (GET /v1/budgets):
// team daily budgets (spent today against max_usd_per_day) and active tasks' --max-usd.
import { get, el } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';
const usd = (x) => (typeof x === 'number' ? `$${x.toFixed(x < 1 ? 4 : 2)}` : 'unpriced');
const tokens = (l) => l.input_tokens + l.output_tokens + l.cache_read_tokens + l.cache_write_tokens;

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// A horizontal bar chart: one row per [label, value, caption].
export function bars(rows, { width = 560, row = 22, label = 160 } = {}) {
  const max = Math.max(0, ...rows.map((r) => r[1])) || 1;
  const chart = svg('svg', {
    class: 'bars', width, height: rows.length * row + 4, viewBox: `0 0 ${width} ${rows.length * row + 4}`,
    role: 'img',
  });
  rows.forEach(([name, value, caption], i) => {
    const y = i * row + 2;
    const w = Math.max(value > 0 ? 1 : 0, ((width - label - 110) * value) / max);
    const g = svg('g', { class: 'bar', 'data-key': name, 'data-value': value });
    g.append(
      svg('text', { x: 0, y: y + row * 0.7, class: 'label' }, name.length > 24 ? `${name.slice(0, 23)}…` : name),
      svg('rect', { x: label, y: y + 3, width: w, height: row - 6, rx: 2 }),
      svg('text', { x: label + w + 6, y: y + row * 0.7, class: 'value' }, caption),
      svg('title', {}, `${name}: ${caption}`));
    chart.append(g);
  });
  return chart;
}

// A burn-down bar: spent against a limit, red past 100 %.
function budgetBar(spent, max) {
  const width = 300;
  const share = max > 0 ? spent / max : 0;
  const chart = svg('svg', { class: 'budget', width, height: 16, viewBox: `0 0 ${width} 16`, role: 'img' });
  chart.append(
    svg('rect', { x: 0, y: 2, width, height: 12, class: 'limit' }),
    svg('rect', { x: 0, y: 2, width: Math.min(1, share) * width, height: 12, class: share >= 1 ? 'spent over' : 'spent' }),
    svg('title', {}, `${usd(spent)} of ${usd(max)}`));
  return chart;
}

// Today's spend per hour (UTC) as small columns, the current hour last.
function hours(values) {
  const w = 8; const h = 30;
  const max = Math.max(0, ...values) || 1;
  const chart = svg('svg', { class: 'hours', width: 24 * w, height: h, viewBox: `0 0 ${24 * w} ${h}`, role: 'img' });
  values.forEach((v, i) => {
    const bh = v > 0 ? Math.max(1, (h * v) / max) : 0;
    const bar = svg('rect', { x: i * w + 1, y: h - bh, width: w - 2, height: bh, 'data-hour': i, 'data-value': v });
    bar.append(svg('title', {}, `${String(i).padStart(2, '0')}:00 UTC: ${usd(v)}`));
    chart.append(bar);
  });
  return chart;
}

async function usageSection(by, title) {
  const lines = await get(`/v1/usage?by=${encodeURIComponent(by)}`);
  const section = el('section', { class: 'usage', 'data-by': by }, el('h3', {}, title));
  if (!lines.length) { section.append(el('p', { class: 'empty' }, 'No metered usage yet.')); return section; }
  section.append(
    el('h4', {}, 'Dollars'),
    bars(lines.map((l) => [l.key, l.cost_usd ?? 0, usd(l.cost_usd)])),
    el('h4', {}, 'Tokens'),
    bars(lines.map((l) => [l.key, tokens(l), tokens(l).toLocaleString('en')])));
  return section;
}

function budgetsSection(b) {
  const teams = b.teams.map((t) => el('tr', { 'data-team': t.team },
    el('td', {}, t.team),
    el('td', { class: 'num spent' }, usd(t.spent_today_usd)),
    el('td', { class: 'num max' }, t.max_usd_per_day == null ? 'no budget' : usd(t.max_usd_per_day)),
    el('td', {}, t.max_usd_per_day == null ? null : budgetBar(t.spent_today_usd, t.max_usd_per_day)),
    el('td', { class: 'hours' }, hours(t.hourly_usd || []))));
  const tasks = b.tasks.map((t) => el('tr', { 'data-task': t.id },
    el('td', {}, el('a', { href: `#/task/${encodeURIComponent(t.id)}` }, t.name || t.id)),
    el('td', { class: 'num spent' }, usd(t.spent_usd)),
    el('td', { class: 'num max' }, usd(t.max_usd)),
    el('td', {}, budgetBar(t.spent_usd, t.max_usd))));
  const head = (first) => el('thead', {}, el('tr', {}, [first, 'Spent', 'Budget', '', first === 'Team' ? 'Per hour (UTC)' : ''].map((h) => el('th', {}, h))));
  return el('section', { class: 'budgets' },
    el('h3', {}, `Team budgets today (${b.day}, UTC)`),
    teams.length ? el('table', { class: 'team-budgets' }, head('Team'), el('tbody', {}, teams)) : el('p', { class: 'empty' }, 'No teams.'),
    el('h3', {}, 'Active tasks with --max-usd'),
    tasks.length ? el('table', { class: 'task-budgets' }, head('Task'), el('tbody', {}, tasks)) : el('p', { class: 'empty' }, 'None.'));
}

export async function render(main) {
  const box = el('div', { class: 'cost-view' });
  const tagInput = el('input', { type: 'text', name: 'tag', placeholder: 'tag name, e.g. customer' });
  const tagBox = el('div', { class: 'tag-usage' });
  const byTag = el('form', {
    class: 'by-tag',
    onsubmit: async (e) => {
      e.preventDefault();
      const name = tagInput.value.trim();
      if (!name) return;
      try { tagBox.replaceChildren(await usageSection(`tag:${name}`, `By tag ${name}`)); } catch (err) { tagBox.replaceChildren(el('p', { class: 'error' }, err.message)); }
    },
  }, el('label', {}, 'By tag ', tagInput), el('button', { type: 'submit' }, 'Show'));
  main.append(box);
  try {
    const [budgets, ...sections] = await Promise.all([
      get('/v1/budgets'),
      usageSection('day', 'By day'),
      usageSection('model', 'By model'),
      usageSection('team', 'By team'),
      usageSection('pool', 'By pool'),
    ]);
    box.replaceChildren(el('h2', {}, 'Budgets'), budgetsSection(budgets), el('h2', {}, 'Usage'), ...sections, byTag, tagBox);
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}
