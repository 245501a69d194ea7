// The JSON API with the session cookie; every non-GET carries the CSRF header the server asks for.
export async function get(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (!r.ok) throw await failure(r);
  return r.json();
}

export async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-drover-csrf': '1' },
    body: JSON.stringify(body ?? {}),
  });
  if (!r.ok) throw await failure(r);
  return r.status === 204 ? null : r.json();
}

// Follows an SSE stream; returns a function that closes it.
export function follow(path, onMessage, eventName = 'message') {
  const es = new EventSource(path, { withCredentials: true });
  es.addEventListener(eventName, (e) => onMessage(JSON.parse(e.data), e));
  return () => es.close();
}

async function failure(r) {
  try { const b = await r.json(); return new Error(b.error || r.statusText); }
  catch { return new Error(`${r.status} ${r.statusText}`); }
}

// Text for the page: never HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
