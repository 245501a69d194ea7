#!/usr/bin/env bash
# Finds import cycles between the modules of each crate in crates/ (a layering check: code reads one
# way, from leaves up). Needs only bash and python3.
#
#   scripts/module-cycles.sh [--allow CRATE]... [CRATE_DIR]...   check crates (default: crates/*)
#   scripts/module-cycles.sh --self-test                         prove the checker finds a cycle
#   MODULE_CYCLES_GRAPH=1 scripts/module-cycles.sh CRATE_DIR      also print who uses whom
#
# Also MODULE_CYCLES_ALLOW="crate-a crate-b": crates whose cycles are printed but do not fail.
#
# The rule:
# - Each crate target (src/lib.rs, src/main.rs, src/bin/*) is a tree of modules built from its
#   `mod x;` declarations; a file's module is its path (src/engine/start.rs = engine::start).
#   Inline `mod x { … }` blocks (tests) belong to their file's module.
# - A module X *uses* a module Y when X's code names a path into Y: `use crate::…`, `use super::…`,
#   `use self::…` (brace groups expanded) or `crate::y::f` / `super::y::f` anywhere in its code
#   (comments and string literals are ignored). A path names the deepest module it reaches; a name
#   a module re-exports (`pub use child::Name`) is followed to where it is defined, so a re-export
#   does not hide a cycle; so is a name reached through a glob re-export (`pub use x::*`), into
#   the x that defines it. Paths that start with an extern crate's name are not edges.
# - A call of a crate-local `name!` macro (`macro_rules! name`) uses the module that defines it
#   (the expansion's `crate::…` paths are read in the definer, so the caller's edge is added here).
# - A parent may use its children (`mod.rs`/`lib.rs` declare and drive them): an edge from a
#   module to one of its own descendants is allowed. Every other edge counts, including a
#   child's use of an ancestor (`super::Engine`).
# - For every module P, the graph between P's direct children must be acyclic, where child A
#   uses child B when anything in A's subtree uses anything in B's subtree. So siblings
#   (engine::start ↔ engine::supervise) and unrelated subtrees (api::* ↔ engine::*) may not use
#   each other in a circle.
# Any cycle is printed with the modules on it and the lines that make each edge; exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--self-test" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/cyclic/src/engine" "$tmp/acyclic/src/engine"
  for c in cyclic acyclic; do
    printf 'pub mod engine;\npub mod api;\npub struct Config;\n' >"$tmp/$c/src/lib.rs"
    printf '//! crate::api::nothing in a comment\npub mod start;\npub mod supervise;\npub mod terminal;\npub use terminal::fail;\npub struct Engine;\n' \
      >"$tmp/$c/src/engine/mod.rs"
    printf 'use crate::engine::{start, Engine};\npub fn x(_: &Engine) { start::go(); let _ = "crate::api::Y"; }\n' \
      >"$tmp/$c/src/api.rs"
    printf 'use super::Engine;\nuse crate::Config;\npub fn fail(_: &Engine, _: Config) {}\n' \
      >"$tmp/$c/src/engine/terminal.rs"
    printf 'pub fn watch() { super::start::go() }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn t() { watch() }\n}\n' \
      >"$tmp/$c/src/engine/supervise.rs"
  done
  # Cyclic: start -> (re-export engine::fail ->) terminal is fine, but terminal -> supervise ->
  # start -> terminal is a circle.
  printf 'use super::fail;\npub fn go() { fail(todo!(), crate::Config) }\n' >"$tmp/cyclic/src/engine/start.rs"
  printf 'use super::Engine;\nuse crate::Config;\npub fn fail(_: &Engine, _: Config) { super::supervise::watch() }\n' \
    >"$tmp/cyclic/src/engine/terminal.rs"
  printf 'use super::fail;\npub fn go() { fail(todo!(), crate::Config) }\n' >"$tmp/acyclic/src/engine/start.rs"
  status=0
  out=$("$0" "$tmp/cyclic" 2>&1) && status=0 || status=$?
  if [[ $status -ne 1 ]] || ! grep -q "engine::start" <<<"$out" || ! grep -q "engine::terminal" <<<"$out" \
    || ! grep -q "engine::supervise" <<<"$out"; then
    echo "self-test FAILED: a crate with a cycle gave exit $status:"
    echo "$out"
    exit 2
  fi
  if ! out=$("$0" "$tmp/acyclic" 2>&1); then
    echo "self-test FAILED: a crate without a cycle was reported:"
    echo "$out"
    exit 2
  fi
  out=$("$0" --allow cyclic "$tmp/cyclic" 2>&1) || {
    echo "self-test FAILED: an allowed crate failed:"
    echo "$out"
    exit 2
  }
  # A cycle hidden behind glob re-exports: a and b each name the other's type as `crate::X`,
  # which lib.rs re-exports with `pub use a::*; pub use b::*;`.
  mkdir -p "$tmp/globs/src"
  printf 'pub mod a;\npub mod b;\npub use a::*;\npub use b::*;\n' >"$tmp/globs/src/lib.rs"
  printf 'pub struct A;\npub fn f(_: crate::B) {}\n' >"$tmp/globs/src/a.rs"
  printf 'pub struct B;\npub fn g(_: crate::A) {}\n' >"$tmp/globs/src/b.rs"
  out=$("$0" "$tmp/globs" 2>&1) && status=0 || status=$?
  if [[ $status -ne 1 ]] || ! grep -q "CYCLE: globs .*a -> b -> a" <<<"$out"; then
    echo "self-test FAILED: a cycle through glob re-exports gave exit $status:"
    echo "$out"
    exit 2
  fi
  # A cycle through a crate-local macro: c calls `mk!` (defined in m), m names crate::c::C.
  mkdir -p "$tmp/macros/src"
  printf '#[macro_use]\npub mod m;\npub mod c;\n' >"$tmp/macros/src/lib.rs"
  printf 'macro_rules! mk {\n    () => { pub struct Made; };\n}\npub fn uses(_: crate::c::C) {}\n' \
    >"$tmp/macros/src/m.rs"
  printf 'mk!();\npub struct C;\n' >"$tmp/macros/src/c.rs"
  out=$("$0" "$tmp/macros" 2>&1) && status=0 || status=$?
  if [[ $status -ne 1 ]] || ! grep -q "CYCLE: macros .*c -> m -> c" <<<"$out" || ! grep -q "mk!" <<<"$out"; then
    echo "self-test FAILED: a cycle through a crate-local macro gave exit $status:"
    echo "$out"
    exit 2
  fi
  # Without the back edge, neither is a cycle.
  printf 'pub struct B;\n' >"$tmp/globs/src/b.rs"
  printf 'macro_rules! mk {\n    () => { pub struct Made; };\n}\n' >"$tmp/macros/src/m.rs"
  for c in globs macros; do
    if ! out=$("$0" "$tmp/$c" 2>&1); then
      echo "self-test FAILED: $c without a cycle was reported:"
      echo "$out"
      exit 2
    fi
  done
  echo "module-cycles self-test: ok (a cycle is found and fails, an acyclic crate passes, --allow works," \
    "glob re-exports and crate-local macros make edges)"
  exit 0
fi

allow="${MODULE_CYCLES_ALLOW:-}"
dirs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --allow) allow="$allow $2"; shift 2 ;;
    --allow=*) allow="$allow ${1#--allow=}"; shift ;;
    *) dirs+=("$1"); shift ;;
  esac
done
if [[ ${#dirs[@]} -eq 0 ]]; then
  dirs=(crates/*/)
fi

exec python3 - "$allow" "${dirs[@]}" <<'PY'
import os, re, sys
from collections import defaultdict

allow = set(sys.argv[1].split())
dirs = [d.rstrip('/') for d in sys.argv[2:]]

def strip(src):
    """The code with comments, string and char literals blanked (newlines kept for line numbers)."""
    out, i, n = [], 0, len(src)
    def blank(s):
        return re.sub(r'[^\n]', ' ', s)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i)
            j = n if j < 0 else j
            out.append(blank(src[i:j])); i = j
        elif src.startswith('/*', i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith('/*', j): depth += 1; j += 2
                elif src.startswith('*/', j): depth -= 1; j += 2
                else: j += 1
            out.append(blank(src[i:j])); i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (i == 0 or not (src[i-1].isalnum() or src[i-1] == '_')):
            end = '"' + m.group(1)
            j = src.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(src[i:j])); i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            j += 1
            out.append(blank(src[i:j])); i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'").match(src, i)
            if m:
                out.append(blank(m.group(0))); i = m.end()
            else:
                out.append(c); i += 1
        else:
            out.append(c); i += 1
    return ''.join(out)

def expand(tree):
    """`a::{b, c::{d, self}}` → ['a::b', 'a::c::d', 'a::c']."""
    tree = re.sub(r'\s+', '', re.sub(r'\s+as\s+\w+', '', tree))
    depth, start = 0, None
    for k, ch in enumerate(tree):
        if ch == '{':
            if depth == 0: start = k
            depth += 1
        elif ch == '}':
            depth -= 1
    if start is None:
        return [re.sub(r'::self$', '', tree)] if tree else []
    prefix, inner = tree[:start], tree[start + 1:tree.rindex('}')]
    parts, depth, cur = [], 0, ''
    for ch in inner:
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''; continue
        depth += ch == '{'; depth -= ch == '}'
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if not p: continue
        if p == 'self':
            out.append(prefix.rstrip(':'))
        else:
            out.extend(expand(prefix + p))
    return out

USE = re.compile(r'\b((?:pub(?:\([^)]*\))?\s+)?)use\s+([^;]*);', re.S)
PATH = re.compile(r'(?<![\w:])\$?(?:crate|super|self)(?:\s*::\s*\w+)+')
MOD_DECL = re.compile(r'^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*(;|\{)', re.M)

class Target:
    def __init__(self, crate, root):
        self.crate, self.root = crate, root
        self.files = {}        # module tuple -> file path
        self.code = {}         # module tuple -> stripped code
        self.children = defaultdict(set)
        self.reexports = defaultdict(dict)  # module -> name -> absolute path (list)
        self.globs = defaultdict(list)      # module -> [absolute path of x] for each `pub use x::*`
        self.load((), root)

    def load(self, mod, path):
        self.files[mod] = path
        code = strip(open(path, encoding='utf-8').read())
        self.code[mod] = code
        base = os.path.basename(path)
        here = os.path.dirname(path) if base in ('lib.rs', 'main.rs', 'mod.rs') or mod == () \
            else os.path.join(os.path.dirname(path), base[:-3])
        depth = 0
        # `mod x;` at the file's top level only (brace depth 0).
        for m in MOD_DECL.finditer(code):
            if code[:m.start()].count('{') - code[:m.start()].count('}') != 0:
                continue
            if m.group(2) != ';':
                continue
            name = m.group(1)
            for cand in (os.path.join(here, name + '.rs'), os.path.join(here, name, 'mod.rs')):
                if os.path.exists(cand):
                    self.children[mod].add(mod + (name,))
                    self.load(mod + (name,), cand)
                    break

    def scopes(self, mod):
        """(offset, scope module) boundaries: inline `mod x {` blocks shift `super`/`self`."""
        code = self.code[mod]
        marks = []  # (start, end, name)
        for m in MOD_DECL.finditer(code):
            if m.group(2) != '{':
                continue
            depth, j = 1, m.end()
            while j < len(code) and depth:
                depth += code[j] == '{'; depth -= code[j] == '}'; j += 1
            marks.append((m.start(), j, m.group(1)))
        def scope_at(pos):
            s = list(mod)
            for a, b, name in marks:
                if a <= pos < b:
                    s.append(name)
            return tuple(s)
        return scope_at

    def absolute(self, scope, path):
        segs = [s for s in re.split(r'\s*::\s*', path.strip()) if s]
        if not segs: return None
        cur = list(scope)
        head = segs[0].lstrip('$')
        if head == 'crate':
            cur = []; segs = segs[1:]
        elif head in ('super', 'self'):
            while segs and segs[0] in ('super', 'self'):
                if segs[0] == 'super':
                    if not cur: return None
                    cur.pop()
                segs = segs[1:]
        else:
            return None
        return cur + segs

    def resolve(self, abspath, seen=0):
        """The file module a path lands in (re-exports followed)."""
        best = ()
        for k in range(len(abspath), -1, -1):
            if tuple(abspath[:k]) in self.files:
                best = tuple(abspath[:k]); rest = abspath[k:]
                break
        if rest and seen < 8 and rest[0] in self.reexports.get(best, {}):
            return self.resolve(self.reexports[best][rest[0]] + rest[1:], seen + 1)
        if rest and seen < 8 and not self.defines(best, rest[0]):
            # A name reached through `pub use x::*`: followed into the x that has it.
            for g in self.globs.get(best, []):
                if self.provides(g, rest[0]):
                    return self.resolve(g + rest, seen + 1)
        return best

    def defines(self, mod, name):
        """Whether a file module's own code defines `name` (an item, or inside a macro call)."""
        return re.search(r'\b(?:struct|enum|union|trait|type|fn|const|static|mod)\s+'
                         + re.escape(name) + r'\b', self.code.get(mod, '')) is not None

    def provides(self, path, name, seen=0):
        """Whether `name` can be reached at module `path`: defined, re-exported or glob re-exported."""
        mod = tuple(path)
        if mod not in self.files or seen > 8:
            return False
        if self.defines(mod, name) or name in self.reexports.get(mod, {}):
            return True
        return any(self.provides(g, name, seen + 1) for g in self.globs.get(mod, []))

    def edges(self):
        # Re-exports first (pub use ...), per file module.
        for mod, code in self.code.items():
            scope_at = self.scopes(mod)
            for m in USE.finditer(code):
                if not m.group(1): continue
                if scope_at(m.start()) != mod: continue
                for p in expand(m.group(2)):
                    name = p.split('::')[-1]
                    ab = self.absolute(mod, p)
                    if ab is None:
                        # `pub use child::x` without crate/super/self: relative to this module.
                        first = p.split('::')[0]
                        if mod + (first,) in self.files:
                            ab = list(mod) + p.split('::')
                        else:
                            continue
                    if name == '*':
                        self.globs[mod].append(ab[:-1])
                    else:
                        self.reexports[mod][name] = ab
        # Crate-local `macro_rules! name` definitions: name -> defining module.
        macros = {}
        for mod, code in self.code.items():
            for m in re.finditer(r'macro_rules\s*!\s*(\w+)', code):
                macros.setdefault(m.group(1), mod)
        out = defaultdict(list)  # (from, to) -> [evidence]
        for mod, code in self.code.items():
            scope_at = self.scopes(mod)
            lines = code.split('\n')
            refs = []
            for m in USE.finditer(code):
                for p in expand(m.group(2)):
                    first = p.split('::')[0]
                    scope = scope_at(m.start())
                    if first in ('crate', 'super', 'self', '$crate'):
                        refs.append((m.start(), scope, p))
                    elif scope + (first,) in self.files:
                        refs.append((m.start(), scope, 'self::' + p))
            masked = USE.sub(lambda m: re.sub(r'[^\n]', ' ', m.group(0)), code)
            for m in PATH.finditer(masked):
                refs.append((m.start(), scope_at(m.start()), m.group(0)))
            # A call of a crate-local `name!` macro uses the module that defines it (its expansion
            # names that module's paths, which the scan attributes to the definer).
            for m in re.finditer(r'(?<![\w:])(?:\$?crate\s*::\s*)?(\w+)\s*!', masked):
                if m.group(1) in macros and not re.search(r'macro_rules\s*!\s*$', masked[:m.start()]):
                    refs.append((m.start(), scope_at(m.start()), '@macro:' + m.group(1)))
            for pos, scope, p in refs:
                if p.startswith('@macro:'):
                    to = macros[p[len('@macro:'):]]
                    if to == mod:
                        continue
                    line = code.count('\n', 0, pos) + 1
                    out[(mod, to)].append(f"{self.files[mod]}:{line}: {p[len('@macro:'):]}!")
                    continue
                ab = self.absolute(scope, p)
                if ab is None: continue
                to = self.resolve(ab)
                if to == mod or to[:len(mod)] == mod:
                    continue  # itself, or a parent using its child
                line = code.count('\n', 0, pos) + 1
                shown = re.sub(r'\s+', '', p)
                out[(mod, to)].append(f"{self.files[mod]}:{line}: {shown}")
        return out

def name(m):
    return '::'.join(m) or 'crate'

def cycles_of(nodes, adj):
    """Strongly connected components with more than one node (Tarjan), each as one cycle path."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                comps.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    paths = []
    for comp in comps:
        # One concrete circle through the component: BFS back to its first node.
        start, cs = comp[0], set(comp)
        prev, queue, found = {start: None}, [start], None
        while queue and found is None:
            v = queue.pop(0)
            for w in sorted(adj.get(v, ())):
                if w not in cs: continue
                if w == start:
                    found = v; break
                if w not in prev:
                    prev[w] = v; queue.append(w)
        path, v = [], found
        while v is not None:
            path.append(v); v = prev[v]
        paths.append((comp, list(reversed(path)) + [start]))
    return paths

failed = 0
total = 0
for d in dirs:
    crate = os.path.basename(d)
    roots = [os.path.join(d, 'src', f) for f in ('lib.rs', 'main.rs')]
    bindir = os.path.join(d, 'src', 'bin')
    if os.path.isdir(bindir):
        for f in sorted(os.listdir(bindir)):
            p = os.path.join(bindir, f)
            roots.append(p if f.endswith('.rs') else os.path.join(p, 'main.rs'))
    for root in roots:
        if not os.path.exists(root): continue
        t = Target(crate, root)
        edges = t.edges()
        found = []
        for parent in sorted(t.files):
            kids = t.children.get(parent, set())
            if len(kids) < 2: continue
            def kid_of(m):
                return m[:len(parent) + 1] if m[:len(parent)] == parent and len(m) > len(parent) else None
            adj, why = defaultdict(set), defaultdict(list)
            for (a, b), ev in edges.items():
                ka, kb = kid_of(a), kid_of(b)
                if ka and kb and ka != kb:
                    adj[ka].add(kb); why[(ka, kb)].extend(ev)
            if os.environ.get('MODULE_CYCLES_GRAPH'):
                for k in sorted(kids):
                    print(f"{crate}: {name(k)} -> {', '.join(name(x) for x in sorted(adj.get(k, ()))) or '(nothing)'}")
            for comp, path in cycles_of(kids, adj):
                found.append((parent, comp, path, why))
        total += len(found)
        allowed = crate in allow
        for parent, comp, path, why in found:
            tag = 'allowed' if allowed else 'CYCLE'
            print(f"{tag}: {crate} ({os.path.relpath(root, d)}), under {name(parent)}: "
                  + ' -> '.join(name(m) for m in path))
            for a, b in zip(path, path[1:]):
                ev = why[(a, b)]
                print(f"    {name(a)} -> {name(b)}:")
                for e in ev[:3]:
                    print(f"        {e}")
                if len(ev) > 3:
                    print(f"        … and {len(ev) - 3} more")
            if len(comp) > len(path) - 1:
                print(f"    (the whole knot: {', '.join(name(m) for m in comp)})")
        if found and not allowed:
            failed += len(found)
print(f"module-cycles: {total} cycle(s) in {len(dirs)} crate(s)"
      + (f", {total - failed} in allowed crates ({' '.join(sorted(allow))})" if total - failed else ""))
sys.exit(1 if failed else 0)
PY
