// The dashboard's router: #/ fleet, #/task/ID, #/pools, #/cost. Each view module exports
// `render(main, params)` and may return a function that stops its live updates.
const views = {
  fleet: () => import('./fleet.js'),
  task: () => import('./task.js'),
  pools: () => import('./pools.js'),
  cost: () => import('./cost.js'),
};

let stop = null;

async function route() {
  const [, name = '', ...rest] = location.hash.replace(/^#/, '').split('/');
  const view = views[name] ? name : name === '' ? 'fleet' : null;
  const main = document.getElementById('view');
  if (stop) { stop(); stop = null; }
  main.replaceChildren();
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === view);
  if (!view) { main.textContent = 'No such page.'; return; }
  const mod = await views[view]();
  stop = (await mod.render(main, rest.map(decodeURIComponent))) || null;
}

window.addEventListener('hashchange', route);
route();
