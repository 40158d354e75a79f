// The AWS SDK for JavaScript v3 against the real passport binary, with moto_server as STS.
// Self-contained on purpose (no code shared with the Python harness).
// Run: node --test tests/clients/node/   (after `npm ci` in this directory and `cargo build`)

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { fromHttp } from "@aws-sdk/credential-provider-http";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const ROLE_ARN = "arn:aws:iam::111122223333:role/app";
const SESSION = "node-test";
const ASSUMED_ROLE_ARN = `arn:aws:sts::111122223333:assumed-role/app/${SESSION}`;

const bin = process.env.PASSPORT_BIN ?? "target/debug/passport";
const PASSPORT = isAbsolute(bin) ? bin : join(REPO_ROOT, bin);

const work = mkdtempSync(join(tmpdir(), "passport-node-"));
const children = [];
let moto, passport;

// n distinct free loopback ports (all held open together, so none repeats).
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise((res, rej) => {
      const srv = createServer();
      srv.on("error", rej);
      srv.listen(0, "127.0.0.1", () => res(srv));
    })),
  );
  const ports = servers.map((srv) => srv.address().port);
  await Promise.all(servers.map((srv) => new Promise((res) => srv.close(res))));
  return ports;
}

function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.output = "";
  child.stdout.on("data", (d) => (child.output += d));
  child.stderr.on("data", (d) => (child.output += d));
  child.exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  child.on("error", (e) => (child.output += `spawn error: ${e}\n`));
  children.push(child);
  return child;
}

async function waitFor(what, child, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}:\n${child.output}`);
    try {
      if (await check()) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready after ${seconds}s:\n${child.output}`);
}

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");

function fakeJwt() {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: "RS256", typ: "JWT", kid: "test-key" };
  const claims = {
    iss: "https://oidc.eks.us-east-1.amazonaws.com/id/TESTCLUSTER",
    sub: "system:serviceaccount:default:app",
    aud: ["sts.amazonaws.com"],
    iat: now,
    exp: now + 3600,
  };
  return `${b64url(header)}.${b64url(claims)}.bm90LWEtcmVhbC1zaWduYXR1cmU`;
}

before(async () => {
  assert.ok(existsSync(PASSPORT), `passport binary not found at ${PASSPORT}: run cargo build`);
  const [motoPort, port, adminPort] = await freePorts(3);
  moto = start("moto_server", ["-H", "127.0.0.1", "-p", String(motoPort)]);
  moto.url = `http://127.0.0.1:${motoPort}`;
  await waitFor("moto_server", moto, async () => (await fetch(`${moto.url}/moto-api/`)).status < 500);

  const tokenFile = join(work, "token");
  writeFileSync(tokenFile, fakeJwt());
  passport = start(PASSPORT, [
    "serve",
    "--role-arn", ROLE_ARN,
    "--token-file", tokenFile,
    "--sts-endpoint", moto.url,
    "--session-name", SESSION,
    "--listen", `127.0.0.1:${port}`,
    "--admin-listen", `127.0.0.1:${adminPort}`,
    "--auth-token-file", join(work, "auth-token"),
    "--drain-delay", "0s",
  ]);
  passport.url = `http://127.0.0.1:${port}/v1/credentials`;
  passport.authFile = join(work, "auth-token");
  await waitFor("passport", passport, async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 200);
});

after(async () => {
  try {
    if (passport && passport.exitCode === null) {
      passport.kill("SIGTERM");
      const timer = new Promise((r) => setTimeout(() => r("timeout"), 5000));
      const result = await Promise.race([passport.exited, timer]);
      assert.deepEqual(result, { code: 0, signal: null }, `passport did not exit 0 on SIGTERM:\n${passport.output}`);
    }
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  }
});

async function served() {
  const response = await fetch(passport.url, { headers: { Authorization: readFileSync(passport.authFile, "utf8") } });
  assert.equal(response.status, 200);
  return response.json();
}

async function callerIdentity(credentials) {
  const sts = new STSClient({ region: "us-east-1", endpoint: moto.url, credentials });
  try {
    return await sts.send(new GetCallerIdentityCommand({}));
  } finally {
    sts.destroy();
  }
}

test("fromHttp with explicit options gets exactly the served credentials", async () => {
  const provider = fromHttp({
    awsContainerCredentialsFullUri: passport.url,
    awsContainerAuthorizationTokenFile: passport.authFile,
  });
  const credentials = await provider();
  const body = await served();
  assert.equal(credentials.accessKeyId, body.AccessKeyId);
  assert.equal(credentials.secretAccessKey, body.SecretAccessKey);
  assert.equal(credentials.sessionToken, body.Token);
  assert.equal(credentials.expiration.toISOString().replace(".000Z", "Z"), body.Expiration);
  assert.ok(credentials.expiration.getTime() - Date.now() > 15 * 60 * 1000, "less than 15 minutes left");
});

test("fromHttp from the environment, then GetCallerIdentity against STS returns the assumed role", async () => {
  const saved = { ...process.env };
  try {
    for (const name of Object.keys(process.env)) {
      if (name.startsWith("AWS_")) delete process.env[name];
    }
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = passport.url;
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = passport.authFile;
    const credentials = await fromHttp()();
    assert.equal(credentials.accessKeyId, (await served()).AccessKeyId);
    const identity = await callerIdentity(credentials);
    assert.equal(identity.Arn, ASSUMED_ROLE_ARN);
    assert.equal(identity.Account, "111122223333");
  } finally {
    for (const name of Object.keys(process.env)) delete process.env[name];
    Object.assign(process.env, saved);
  }
});

test("the STS client refreshes through the provider on its own", async () => {
  const sts = new STSClient({
    region: "us-east-1",
    endpoint: moto.url,
    credentials: fromHttp({
      awsContainerCredentialsFullUri: passport.url,
      awsContainerAuthorizationTokenFile: passport.authFile,
    }),
  });
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    assert.equal(identity.Arn, ASSUMED_ROLE_ARN);
  } finally {
    sts.destroy();
  }
});

test("a wrong token is a CredentialsProviderError with passport's Code, not a hang", async () => {
  const wrong = join(work, "wrong-token");
  writeFileSync(wrong, "0".repeat(64));
  const started = Date.now();
  await assert.rejects(
    fromHttp({ awsContainerCredentialsFullUri: passport.url, awsContainerAuthorizationTokenFile: wrong, maxRetries: 1 })(),
    (e) => {
      assert.equal(e.name, "CredentialsProviderError");
      assert.match(e.message, /403/);
      assert.equal(e.Code, "InvalidAuthorization");
      return true;
    },
  );
  assert.ok(Date.now() - started < 10_000);
});
