// Drift (3): `src/schema.ts` is what openapi-typescript makes of the committed `openapi.json`
// (itself checked against what the daemon serves, by the Rust tests and `client.test.ts`).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

test("src/schema.ts is generated from openapi.json", () => {
  const bin = join(root, "node_modules", ".bin", "openapi-typescript");
  const generated = execFileSync(bin, [join(root, "openapi.json")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const committed = readFileSync(join(root, "src", "schema.ts"), "utf8");
  assert.ok(generated.includes("export interface components"), generated.slice(0, 200));
  assert.ok(
    generated === committed,
    "src/schema.ts is not what openapi-typescript makes of openapi.json: run `npm run generate` in clients/typescript and commit it",
  );
});
