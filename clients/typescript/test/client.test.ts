// The client against a real daemon: `crates/drover-cli/tests/typescript_client.rs` starts one
// with `--listen 127.0.0.1:0`, makes a team and a key, and runs these with DROVER_URL,
// DROVER_API_KEY, DROVER_TEST_TEAM and DROVER_TEST_REPO (a git repository on the daemon's host).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Drover, DroverError, type TaskEvent } from "../src/index.js";

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: these tests need a daemon (cargo test -p drover-cli --test typescript_client)`);
  return v;
}

const baseUrl = need("DROVER_URL");
const apiKey = need("DROVER_API_KEY");
const team = need("DROVER_TEST_TEAM");
const repo = need("DROVER_TEST_REPO");
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const LINES = 300;
// A command task that prints LINES lines, a few ms apart.
const cmd = `for i in $(seq 1 ${LINES}); do echo line-$i; sleep 0.005; done`;

/** A `fetch` that breaks each SSE response after `cutAfter` events (in the middle of the next
 * one), `drops` times; it records the `Last-Event-ID` each SSE request sent. */
function droppingFetch(cutAfter: number, drops: number, delivered: () => number) {
  const state = { dropped: 0, resumedFrom: [] as (string | null)[], deliveredThen: [] as number[] };
  const f: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const headers = new Headers(init?.headers);
    if (headers.get("accept") !== "text/event-stream" || !res.body) return res;
    state.resumedFrom.push(headers.get("last-event-id"));
    state.deliveredThen.push(delivered());
    if (state.dropped >= drops) return res;
    const src = res.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let ends = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await src.read();
        if (done) {
          controller.close();
          return;
        }
        const text = decoder.decode(value, { stream: true });
        let at = 0;
        for (;;) {
          const i = text.indexOf("\n\n", at);
          if (i < 0) break;
          ends += 1;
          at = i + 2;
          if (ends === cutAfter) {
            // Pass the events before the cut and half a line of the next one, then fail.
            controller.enqueue(encoder.encode(text.slice(0, Math.min(text.length, at + 12))));
            state.dropped += 1;
            controller.error(new Error("forced disconnect"));
            await src.cancel().catch(() => undefined);
            return;
          }
        }
        controller.enqueue(encoder.encode(text));
      },
      cancel: () => src.cancel(),
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return { fetch: f, state };
}

test("the seed's tasks.create runs a task; its events are read to `end` across forced disconnects, each once", async () => {
  const seen: TaskEvent[] = [];
  const drops = droppingFetch(40, 3, () => seen.at(-1)?.seq ?? 0);
  const drover = new Drover({ baseUrl, apiKey, fetch: drops.fetch });
  const task = await drover.tasks.create({
    repo,
    task: "Bump the dependency and open a branch",
    model: "claude-sonnet-4-6",
    team,
    budget: { maxUsd: 2.0 },
    agent: "command",
    cmd,
    tags: { customer: "acme" },
  });
  assert.match(task.id, /^[0-9a-f]+$/);
  assert.equal(task.team, team);
  assert.deepEqual(task.tags, { customer: "acme" });
  assert.equal(task.budget.max_usd, 2.0);

  for await (const ev of drover.tasks.events(task.id)) seen.push(ev);

  assert.equal(drops.state.dropped, 3, "the stream was cut three times");
  // The first request starts from the beginning; each reconnection resumes after the last event
  // delivered before its cut (`Last-Event-ID`), and something was delivered between cuts.
  const { resumedFrom, deliveredThen } = drops.state;
  assert.equal(resumedFrom.length, 4, `requests: ${JSON.stringify(resumedFrom)}`);
  assert.equal(resumedFrom[0], null);
  assert.deepEqual(resumedFrom.slice(1).map(Number), deliveredThen.slice(1));
  for (let i = 1; i < deliveredThen.length; i++) assert.ok(deliveredThen[i] > deliveredThen[i - 1], JSON.stringify(deliveredThen));
  // Every event exactly once, in order: seqs 1..=last.
  const seqs = seen.map((e) => e.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
  // ... and last is the task's last event: nothing after it in the store.
  const after: TaskEvent[] = await drover.json("GET", `/v1/tasks/${task.id}/events`, { query: { after: seqs.length } });
  assert.deepEqual(after, []);
  const lines = seen
    .filter((e) => e.kind === "text")
    .map((e) => JSON.stringify(e.data).match(/line-(\d+)/)?.[1])
    .filter((n) => n !== undefined)
    .map(Number);
  assert.deepEqual(lines, Array.from({ length: LINES }, (_, i) => i + 1));

  const done = await drover.tasks.wait(task.id, { timeoutMs: 60_000 });
  assert.equal(done.state, "succeeded", JSON.stringify(done.outcome));
  assert.equal(done.result, `line-${LINES}`);
  const got = await drover.tasks.get(task.id);
  assert.equal(got.id, task.id);
});

test("an idempotent create returns the same task; the same key with another body is a 409", async () => {
  const drover = new Drover({ baseUrl, apiKey });
  const key = `ts-${Date.now()}-${Math.random()}`;
  const body = { repo, task: "idempotent", team, agent: "command", cmd: "echo once" };
  const first = await drover.raw("POST", "/v1/tasks", { body, headers: { "idempotency-key": key } });
  assert.equal(first.status, 201);
  const a = (await first.json()) as { id: string };
  const again = await drover.raw("POST", "/v1/tasks", { body, headers: { "idempotency-key": key } });
  assert.equal(again.status, 200);
  const b = await drover.tasks.create(body, { idempotencyKey: key });
  assert.equal(((await again.json()) as { id: string }).id, a.id);
  assert.equal(b.id, a.id);
  await assert.rejects(
    drover.tasks.create({ ...body, task: "another body" }, { idempotencyKey: key }),
    (e: unknown) => e instanceof DroverError && e.status === 409 && e.kind === "conflict" && e.error.length > 0,
  );
  assert.equal((await drover.tasks.wait(a.id, { timeoutMs: 60_000 })).state, "succeeded");
});

test("errors are DroverError: 404 for an unknown task, 401 for a bad key or none", async () => {
  const drover = new Drover({ baseUrl, apiKey });
  await assert.rejects(drover.tasks.get("0000000000"), (e: unknown) => {
    assert.ok(e instanceof DroverError, String(e));
    assert.equal(e.status, 404);
    assert.equal(e.kind, "not_found");
    assert.ok(e.error.length > 0);
    return true;
  });
  for (const key of [`drv_${"0".repeat(64)}`, undefined]) {
    const stranger = new Drover({ baseUrl, apiKey: key });
    await assert.rejects(stranger.tasks.list(), (e: unknown) => {
      assert.ok(e instanceof DroverError, String(e));
      assert.equal(e.status, 401);
      assert.equal(e.kind, "unauthorized");
      assert.ok(!e.message.includes(apiKey), "the answer never echoes a key");
      return true;
    });
  }
});

test("the daemon serves the committed openapi.json; health needs no key", async () => {
  const anonymous = new Drover({ baseUrl });
  const served = await anonymous.openapi();
  const committed = JSON.parse(readFileSync(join(root, "openapi.json"), "utf8"));
  assert.deepEqual(
    served,
    committed,
    "clients/typescript/openapi.json is stale: DROVER_BLESS=1 cargo test -p drover-daemon openapi, then npm run generate",
  );
  const health = await anonymous.health();
  assert.equal(health.ok, true);
  assert.equal(health.version, (committed as { info: { version: string } }).info.version);
});
