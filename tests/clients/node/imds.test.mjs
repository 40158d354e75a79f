// The JS SDK v3 IMDS provider against passport's IMDS endpoint, with moto_server as STS.
//
// Self-contained: starts `moto_server` and the real `passport` binary (PASSPORT_BIN,
// default target/debug/passport) on free loopback ports, then calls `fromInstanceMetadata`
// with only AWS_EC2_METADATA_SERVICE_ENDPOINT pointing at passport, and checks it receives
// exactly what passport's container endpoint serves (what moto's STS issued).
//
// Two packages: `@aws-sdk/credential-provider-imds` (the name most code imports; now a
// deprecated shim over an old @smithy 1.x) and `@smithy/credential-provider-imds` 4.x,
// which the current `@aws-sdk/credential-providers` chain uses.
//
// Run: cd tests/clients/node && npm ci && node --test imds.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { fromInstanceMetadata as fromInstanceMetadataAwsSdk } from "@aws-sdk/credential-provider-imds";
import { fromInstanceMetadata as fromInstanceMetadataSmithy } from "@smithy/credential-provider-imds";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const ROLE_ARN = "arn:aws:iam::123456789012:role/team/imds-app";
const ROLE_NAME = "imds-app";

const SHADOWING = [
  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
  "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "HTTP_PROXY", "HTTPS_PROXY",
  "http_proxy", "https_proxy",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function waitFor(check, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}

function cleanEnv() {
  const env = { ...process.env };
  for (const k of SHADOWING) delete env[k];
  env.NO_PROXY = env.no_proxy = "127.0.0.1,localhost";
  return env;
}

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const fakeJwt = () =>
  `${b64url({ alg: "RS256", kid: "test" })}.${b64url({
    iss: "https://oidc.example.test",
    sub: "system:serviceaccount:default:imds-app",
    aud: ["sts.amazonaws.com"],
    exp: Math.floor(Date.now() / 1000) + 3600,
  })}.c2lnbmF0dXJl`;

function stop(child) {
  if (child && child.exitCode === null && child.signalCode === null) {
    return new Promise((res) => {
      child.once("exit", res);
      child.kill("SIGTERM");
    });
  }
}

let moto, passport, base, served, skipReason;
const dir = mkdtempSync(join(tmpdir(), "passport-imds-node-"));

before(async () => {
  const bin = process.env.PASSPORT_BIN ?? join(ROOT, "target/debug/passport");
  if (!existsSync(bin)) {
    skipReason = `${bin} not built (cargo build)`;
    return;
  }
  if (spawnSync("moto_server", ["--help"]).error) {
    skipReason = "moto_server not installed (pip install 'moto[server]')";
    return;
  }
  const motoPort = await freePort();
  moto = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(motoPort)], {
    env: cleanEnv(),
    stdio: "ignore",
  });
  const motoUrl = `http://127.0.0.1:${motoPort}`;
  await waitFor(async () => (await fetch(`${motoUrl}/moto-api/`)).ok, "moto_server");

  writeFileSync(join(dir, "jwt"), fakeJwt());
  writeFileSync(join(dir, "config"), "");
  writeFileSync(join(dir, "credentials"), "");
  const authFile = join(dir, "auth-token");
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  passport = spawn(
    bin,
    [
      "serve", "--role-arn", ROLE_ARN, "--token-file", join(dir, "jwt"),
      "--sts-endpoint", motoUrl, "--region", "eu-west-1",
      "--listen", `127.0.0.1:${port}`, "--admin-listen", "off",
      "--auth-token-file", authFile, "--drain-delay", "0s", "--imds",
    ],
    { env: { ...cleanEnv(), PASSPORT_LOG: "warn" }, stdio: ["ignore", "inherit", "inherit"] },
  );
  served = await waitFor(async () => {
    const r = await fetch(`${base}/v1/credentials`, {
      headers: { Authorization: readFileSync(authFile, "utf8") },
    });
    return r.ok && (await r.json());
  }, "passport to obtain credentials from moto");

  // The SDK reads its configuration from the process environment.
  for (const k of SHADOWING) delete process.env[k];
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = base;
  process.env.AWS_EC2_METADATA_V1_DISABLED = "true";
  process.env.AWS_CONFIG_FILE = join(dir, "config");
  process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, "credentials");
  process.env.NO_PROXY = "127.0.0.1,localhost";
});

after(async () => {
  await stop(passport);
  await stop(moto);
});

function assertSame(creds) {
  assert.equal(creds.accessKeyId, served.AccessKeyId);
  assert.equal(creds.secretAccessKey, served.SecretAccessKey);
  assert.equal(creds.sessionToken, served.Token);
  assert.equal(creds.expiration.toISOString().replace(".000Z", "Z"), served.Expiration);
  assert.match(served.AccessKeyId, /^ASIA/, "issued by moto's STS");
}

for (const [name, fromInstanceMetadata] of [
  ["@aws-sdk/credential-provider-imds", fromInstanceMetadataAwsSdk],
  ["@smithy/credential-provider-imds", fromInstanceMetadataSmithy],
]) {
  test(`${name} fromInstanceMetadata gets exactly the STS credentials`, async (t) => {
    if (skipReason) return t.skip(skipReason);
    const creds = await fromInstanceMetadata({ timeout: 1000, maxRetries: 0 })();
    assertSame(creds);
  });
}

test("IMDSv1 is refused and the token PUT carries the TTL header", async (t) => {
  if (skipReason) return t.skip(skipReason);
  const listing = `${base}/latest/meta-data/iam/security-credentials/`;
  assert.equal((await fetch(listing)).status, 401);
  const put = await fetch(`${base}/latest/api/token`, {
    method: "PUT",
    headers: { "X-aws-ec2-metadata-token-ttl-seconds": "21600" },
  });
  assert.equal(put.status, 200);
  assert.equal(put.headers.get("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
  const token = await put.text();
  const r = await fetch(listing, { headers: { "X-aws-ec2-metadata-token": token } });
  assert.equal(await r.text(), ROLE_NAME);
});
