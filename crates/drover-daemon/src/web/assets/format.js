// Small formatting helpers shared by the views (text only: callers put it in textContent).

// "12s", "3m 05s", "1h 02m", "2d 03h" between two instants (ms since epoch).
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor(s / 3600) % 24)}h`;
}

// A task's elapsed time: from its start (or creation) to its end, or to now while active.
export function elapsed(start, end) {
  if (!start) return '';
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : Date.now();
  return Number.isNaN(a) ? '' : duration(b - a);
}

export function usd(v) {
  if (v === null || v === undefined) return '';
  return v >= 1 ? `$${v.toFixed(2)}` : `$${v.toFixed(4)}`;
}

export function tokens(n) {
  if (!n) return '0';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  return String(n);
}

export const ACTIVE = new Set(['queued', 'preparing', 'running', 'needs_input', 'verifying']);

// Elements carrying data-start (and data-end when finished) show their elapsed time; call this
// every second to keep active ones ticking.
export function tickElapsed(root) {
  for (const e of root.querySelectorAll('[data-start]')) {
    const t = elapsed(e.dataset.start, e.dataset.end || null);
    if (e.textContent !== t) e.textContent = t;
  }
}

// One line of at most n characters.
export function oneLine(s, n = 200) {
  const t = String(s ?? '').replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

// An http(s) URL to link to, or null (never a javascript: or data: link).
export function safeHref(u) {
  try {
    const url = new URL(String(u));
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch { return null; }
}
