"""Proofs against a real kube-apiserver (tests/k8s/control-plane: etcd + kube-apiserver on
loopback, no kubelet).

* Every rendered manifest (the kustomize base, overlays and examples, and `passport inject`
  output for every fixture) passes a server-side dry run: real validation, defaulting and
  admission. Native sidecar fields survive a create and read-back.
* Real service-account tokens: TokenRequest (audience sts.amazonaws.com, bound to a Pod
  object) from the apiserver's own signing key; the apiserver's OIDC discovery and JWKS go
  to `passport emulator --trust-jwks`; `passport serve` exchanges the real token and boto3
  gets the assumed-role ARN; `passport check` reports the real claims; a second
  TokenRequest swapped in with the kubelet's `..data` layout is used at the next attempt.

Run alone (after `cargo build`, with boto3, pytest and PyYAML installed):

    python3 -m pytest -q -p no:cacheprovider tests/k8s/test_apiserver.py

PASSPORT_BIN picks the binary (default target/debug/passport). The control plane is built
on first use (cached; see tests/k8s/control-plane) and started in a temporary directory.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# The helpers every suite shares (tests/pylib).
sys.path.insert(0, str(REPO / "tests" / "pylib"))

from passport_harness import SHADOWING, free_ports, passport_bin, stop, wait_until  # noqa: E402

CONTROL_PLANE = REPO / "tests" / "k8s" / "control-plane"
ACCOUNT_ID = "111122223333"
ROLE = "k8s-app"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}"
SESSION = "apiserver-test"
AUDIENCE = "sts.amazonaws.com"
STARTUP_TIMEOUT = 30.0


# --------------------------------------------------------------------------- helpers


def passport(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(passport_bin()), *args], capture_output=True, text=True, env=env, check=check, timeout=60
    )


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def jwt_claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def jwt_header(jwt: str) -> dict:
    header = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


def subset(want, got, path: str = "") -> list[str]:
    """Where `got` lacks or changes something in `want` (the server may add, never alter)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not a mapping"]
        problems = []
        for k, v in want.items():
            if k not in got:
                problems.append(f"{path}.{k}: dropped by the server")
            else:
                problems += subset(v, got[k], f"{path}.{k}")
        return problems
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {got!r} != {want!r}"]
        return [p for i, (w, g) in enumerate(zip(want, got)) for p in subset(w, g, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: {got!r} != {want!r}"]


def documents(text: str) -> list[dict]:
    """YAML documents, with `kind: List` items flattened."""
    out = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc.get("kind") == "List":
            out += doc.get("items") or []
        else:
            out.append(doc)
    return out


def pod_spec(obj: dict) -> dict | None:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"):
        return (spec.get("template") or {}).get("spec")
    return None


def native_sidecars(obj: dict) -> list[dict]:
    spec = pod_spec(obj) or {}
    return [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]


def without_api_token_mount(container: dict) -> dict:
    """The container less the `kube-api-access-*` mount that the ServiceAccount admission
    plugin appends to every container, init containers included, of a pod that does not
    set automountServiceAccountToken: false. The only thing the server adds to a sidecar
    list; everything written must come back unchanged."""
    out = dict(container)
    mounts = [m for m in container.get("volumeMounts") or [] if not m["name"].startswith("kube-api-access-")]
    if mounts:
        out["volumeMounts"] = mounts
    else:
        out.pop("volumeMounts", None)
    return out


def key(obj: dict) -> tuple:
    return (obj.get("kind"), obj["metadata"].get("namespace"), obj["metadata"]["name"])


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    state: Path
    kubeconfig: Path
    kubectl_bin: Path
    issuer: str

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def get_json(self, path: str) -> dict:
        """GET on the apiserver with the admin client certificate, verifying its CA."""
        ctx = ssl.create_default_context(cafile=str(self.state / "ca.crt"))
        ctx.load_cert_chain(str(self.state / "admin.crt"), str(self.state / "admin.key"))
        with urllib.request.urlopen(self.issuer + path, context=ctx, timeout=10) as r:
            assert r.status == 200
            return json.load(r)

    def namespace(self, prefix: str) -> str:
        """A fresh namespace with its `default` ServiceAccount (no controller-manager makes it)."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        self.kubectl("create", "serviceaccount", "default", "-n", name)
        return name

    def ensure(self, kind: str, name: str, namespace: str | None = None) -> None:
        ns = ["-n", namespace] if namespace else []
        if self.kubectl("get", kind, name, *ns, check=False).returncode != 0:
            self.kubectl("create", kind, name, *ns)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Cluster:
    state = tmp_path_factory.mktemp("control-plane")
    env = {**os.environ, "PASSPORT_CP_DIR": str(state)}
    # stderr (build and start-up progress) goes to the terminal; stdout's last line is the path.
    up = subprocess.run([str(CONTROL_PLANE), "up"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        if up.returncode != 0:
            pytest.fail(f"tests/k8s/control-plane up exited {up.returncode}")
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        assert kubeconfig.is_file(), kubeconfig
        bin_dir = Path((state / "bin").read_text().strip())
        yield Cluster(state, kubeconfig, bin_dir / "kubectl", (state / "issuer").read_text().strip())
    finally:
        subprocess.run([str(CONTROL_PLANE), "down"], env=env, check=False)


# --------------------------------------------------------------------------- manifests

# k8s/components/* are kustomize Components: not buildable alone (the overlays use them, and
# tests/k8s/check.sh renders every pair).
KUSTOMIZATIONS = sorted(
    p.parent.relative_to(REPO / "k8s").as_posix()
    for p in (REPO / "k8s").rglob("kustomization.yaml")
    if "components" not in p.relative_to(REPO / "k8s").parts
)
INJECT_CASES = sorted(
    p.parent.name
    for p in (REPO / "tests" / "fixtures" / "inject").glob("*/input.yaml")
    # Cases that inject refuses (expected.exit) have no output to send.
    if not (p.parent / "expected.exit").exists()
)


def render(cluster: Cluster, source: str) -> str:
    kind, _, name = source.partition(":")
    if kind == "kustomize":
        return cluster.kubectl("kustomize", str(REPO / "k8s" / name)).stdout
    case = REPO / "tests" / "fixtures" / "inject" / name
    args = (case / "args").read_text().split("\n") if (case / "args").exists() else []
    return passport("inject", *[a for a in args if a], str(case / "input.yaml")).stdout


def prepare(cluster: Cluster, docs: list[dict]) -> None:
    """What a real cluster already has for these objects: their namespaces, the service
    accounts their pods name (admission checks those even on a dry run), and a CRD for each
    kind the server does not serve (the Argo Rollout and the custom "Job" in the fixtures)."""
    served = set(cluster.kubectl("api-versions").stdout.split())
    for doc in docs:
        ns = doc["metadata"].get("namespace")
        if ns:
            cluster.ensure("namespace", ns)
        if doc.get("kind") == "Pod":
            cluster.ensure("serviceaccount", (doc.get("spec") or {}).get("serviceAccountName") or "default", ns or "default")
        api_version = doc["apiVersion"]
        if api_version not in served and "/" in api_version:
            group, version = api_version.split("/")
            plural = doc["kind"].lower() + "s"
            crd = {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": doc["kind"], "plural": plural, "singular": doc["kind"].lower()},
                    "versions": [
                        {
                            "name": version,
                            "served": True,
                            "storage": True,
                            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    ],
                },
            }
            cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{plural}.{group}")
            # Discovery is cached by kubectl; wait until the server lists the new version.
            deadline = time.monotonic() + 30
            while api_version not in cluster.kubectl("api-versions").stdout.split():
                assert time.monotonic() < deadline, f"{api_version} not served after its CRD was established"
                time.sleep(0.2)
            served.add(api_version)


def server_objects(output: str) -> dict[tuple, dict]:
    obj = json.loads(output)
    items = obj["items"] if obj.get("kind") == "List" else [obj]
    return {key(i): i for i in items}


@pytest.mark.parametrize(
    "source", [f"kustomize:{k}" for k in KUSTOMIZATIONS] + [f"inject:{c}" for c in INJECT_CASES]
)
def test_server_side_dry_run(cluster: Cluster, source: str):
    """The apiserver accepts the manifest (validation, defaulting, admission, nothing stored)
    and its answer keeps every native sidecar field as written."""
    text = render(cluster, source)
    docs = documents(text)
    assert docs, f"{source} rendered nothing"
    prepare(cluster, docs)
    result = cluster.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=text, check=False)
    assert result.returncode == 0, f"the apiserver refused {source}:\n{result.stderr}"
    answered = server_objects(result.stdout)
    for doc in docs:
        got = answered.get((doc["kind"], doc["metadata"].get("namespace") or "default", doc["metadata"]["name"]))
        assert got is not None, f"no answer for {key(doc)} in {sorted(answered)}"
        for sidecar in native_sidecars(doc):
            [back] = [without_api_token_mount(c) for c in native_sidecars(got) if c["name"] == sidecar["name"]]
            assert not subset(sidecar, back), subset(sidecar, back)


def test_native_sidecar_round_trip(cluster: Cluster):
    """Create for real, read back: the stored Deployment and Pod keep the native sidecar
    (restartPolicy Always, startupProbe, probes) as written; the server's own defaults are
    there too, so what is read back is the stored object, not an echo."""
    ns = cluster.namespace("sidecar")
    base = documents(render(cluster, "kustomize:base"))
    pod = documents(render(cluster, "inject:pod"))
    objects = [copy.deepcopy(d) for d in base + pod]
    for obj in objects:
        obj["metadata"]["namespace"] = ns
    cluster.ensure("serviceaccount", "tools", ns)  # the pod fixture's account, created before the pod
    created = cluster.kubectl("create", "-o", "json", "-f", "-", input=yaml.safe_dump_all(objects))
    assert created.returncode == 0
    checked = 0
    for obj in objects:
        sidecars = native_sidecars(obj)
        if not sidecars:
            continue
        back = json.loads(cluster.kubectl("get", obj["kind"], obj["metadata"]["name"], "-n", ns, "-o", "json").stdout)
        for sidecar in sidecars:
            assert "startupProbe" in sidecar, f"{key(obj)}: the rendered sidecar has no startupProbe"
            [stored] = [without_api_token_mount(c) for c in native_sidecars(back) if c["name"] == sidecar["name"]]
            assert not subset(sidecar, stored), subset(sidecar, stored)
            assert stored["restartPolicy"] == "Always"
            assert stored["startupProbe"]["httpGet"]["scheme"] == "HTTP"  # defaulted by the server
            # Server-side defaulting happened on the stored object.
            assert stored["terminationMessagePath"] == "/dev/termination-log"
            assert stored["imagePullPolicy"] in ("IfNotPresent", "Always")
            checked += 1
    assert checked >= 2, "expected the base Deployment's and the injected Pod's sidecars"


def test_server_rejects_what_only_a_real_server_rejects(cluster: Cluster):
    """Negative control: the dry run really validates. With restartPolicy OnFailure the
    passport init container is no sidecar, and the apiserver refuses its probes."""
    [deployment] = [d for d in documents(render(cluster, "kustomize:base")) if d["kind"] == "Deployment"]
    ns = cluster.namespace("reject")
    deployment["metadata"]["namespace"] = ns
    native_sidecars(deployment)[0]["restartPolicy"] = "OnFailure"
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(deployment), check=False)
    assert result.returncode != 0
    assert "initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always" in result.stderr, result.stderr


# --------------------------------------------------------------------------- real tokens


@dataclass
class Irsa:
    namespace: str
    pod_uid: str
    emulator_url: str
    trust_policy: Path
    jwks: dict
    discovery: dict
    work: Path

    def token(self, cluster: Cluster, audience: str = AUDIENCE, duration: str = "1h") -> str:
        """A TokenRequest for ServiceAccount app, bound to Pod app."""
        return cluster.kubectl(
            "create", "token", "app", "-n", self.namespace, "--audience", audience, "--duration", duration,
            "--bound-object-kind", "Pod", "--bound-object-name", "app",
        ).stdout.strip()


@pytest.fixture(scope="module")
def irsa(cluster: Cluster, tmp_path_factory):
    """ServiceAccount app and Pod app (stored, never run), the apiserver's OIDC discovery and
    JWKS, a trust policy for exactly system:serviceaccount:NS:app, and `passport emulator`
    trusting the apiserver's keys."""
    work = tmp_path_factory.mktemp("irsa")
    ns = cluster.namespace("irsa")
    cluster.kubectl("create", "serviceaccount", "app", "-n", ns)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {"serviceAccountName": "app", "containers": [{"name": "app", "image": "example/app:1"}]},
    }
    created = json.loads(cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(pod)).stdout)

    discovery = cluster.get_json("/.well-known/openid-configuration")
    assert discovery["issuer"] == cluster.issuer
    assert discovery["jwks_uri"] == cluster.issuer + "/openid/v1/jwks"
    jwks = cluster.get_json("/openid/v1/jwks")
    assert jwks["keys"] and all(k["kty"] == "RSA" for k in jwks["keys"])
    jwks_file = work / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))

    trust = passport(
        "trust-policy", "--issuer", cluster.issuer, "--account-id", ACCOUNT_ID,
        "--namespace", ns, "--service-account", "app",
    ).stdout
    assert f"system:serviceaccount:{ns}:app" in trust
    trust_file = work / "trust.json"
    trust_file.write_text(trust)

    port = free_ports(1)[0]
    log = work / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(passport_bin()), "emulator", "--listen", f"127.0.0.1:{port}", "--no-default-role",
                "--role", f"{ROLE}={trust_file}", "--trust-jwks", f"{cluster.issuer}={jwks_file}",
            ],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("passport emulator", lambda: http_status(url + "/.well-known/openid-configuration") == 200,
                   STARTUP_TIMEOUT, proc, log)
        yield Irsa(ns, created["metadata"]["uid"], url, trust_file, jwks, discovery, work)
    finally:
        stop(proc, timeout=10)


def kubelet_layout(directory: Path, token: str) -> Path:
    """Write `token` as the kubelet's atomic writer does: a timestamped directory, `..data`
    pointing at it (swapped with a rename), `token` -> `..data/token`; the old directory goes."""
    directory.mkdir(exist_ok=True)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    stamp = directory / time.strftime(f"..%Y_%m_%d_%H_%M_%S.{time.monotonic_ns()}")
    stamp.mkdir()
    (stamp / "token").write_text(token)
    os.chmod(stamp / "token", 0o644)
    os.symlink(stamp.name, directory / "..data_tmp")
    os.replace(directory / "..data_tmp", directory / "..data")
    if not (directory / "token").is_symlink():
        os.symlink("..data/token", directory / "token")
    if old:
        (directory / old / "token").unlink()
        (directory / old).rmdir()
    return directory / "token"


@dataclass
class Sidecar:
    proc: subprocess.Popen
    log: Path
    url: str
    admin: str
    auth_token_file: Path

    def records(self, message: str) -> list[dict]:
        """The JSON log records with this message. An event's own `message` field (an error
        text) repeats the key, so the first occurrence, the event's message, wins."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line, object_pairs_hook=lambda pairs: dict(reversed(pairs)))
            except json.JSONDecodeError:
                continue
            if record.get("message") == message:
                out.append(record)
        return out


def start_sidecar(irsa: Irsa, token_file: Path, name: str) -> Sidecar:
    listen, admin = free_ports(2)
    log = irsa.work / f"{name}.log"
    auth = irsa.work / f"{name}.auth-token"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(passport_bin()), "--log-format", "json", "--log-level", "passport=debug", "serve",
                "--role-arn", ROLE_ARN, "--token-file", str(token_file), "--session-name", SESSION,
                "--region", "us-east-1", "--sts-endpoint", irsa.emulator_url,
                "--listen", f"127.0.0.1:{listen}", "--admin-listen", f"127.0.0.1:{admin}",
                "--auth-token-file", str(auth), "--duration-seconds", "900",
            ],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k not in SHADOWING},
        )
    return Sidecar(proc, log, f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}", auth)


def caller_identity(irsa: Irsa, sidecar: Sidecar) -> dict:
    """boto3, unmodified, in a clean process: credentials from passport's container endpoint,
    GetCallerIdentity against the emulator (which checks the SigV4 signature)."""
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING}
    env.update(
        AWS_CONTAINER_CREDENTIALS_FULL_URI=sidecar.url + "/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(sidecar.auth_token_file),
        AWS_ENDPOINT_URL_STS=irsa.emulator_url,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1",
    )
    code = "import boto3, json; print(json.dumps(boto3.client('sts').get_caller_identity()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_real_token_exchanged_by_passport(cluster: Cluster, irsa: Irsa):
    """The kube-apiserver's own token, exchanged by `passport serve` at the emulator that
    trusts the apiserver's JWKS; boto3 gets the assumed role."""
    token = irsa.token(cluster)
    header, claims = jwt_header(token), jwt_claims(token)
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in irsa.jwks["keys"]}
    assert claims["iss"] == cluster.issuer
    assert claims["aud"] == [AUDIENCE]
    assert claims["sub"] == f"system:serviceaccount:{irsa.namespace}:app"
    assert claims["kubernetes.io"]["pod"] == {"name": "app", "uid": irsa.pod_uid}

    token_file = kubelet_layout(irsa.work / "serviceaccount", token)
    sidecar = start_sidecar(irsa, token_file, "serve")
    try:
        wait_until("passport serve", lambda: http_status(sidecar.admin + "/readyz") == 200,
                   STARTUP_TIMEOUT, sidecar.proc, sidecar.log)
        identity = caller_identity(irsa, sidecar)
        print(f"assumed-role ARN from the emulator: {identity['Arn']}")
        assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/{SESSION}"
        assert identity["Account"] == ACCOUNT_ID
        # The exchange passport made carried the apiserver's token (its claims, logged at debug).
        reads = sidecar.records("read web-identity token")
        assert reads and f"Some({claims['exp']})" in reads[0]["exp"], reads
    finally:
        stop(sidecar.proc, timeout=10)


def test_check_reports_the_real_claims(cluster: Cluster, irsa: Irsa):
    """`passport check` on the apiserver's token: issuer, subject, audience, expiry, the
    kubernetes.io pod binding, and the trust policy evaluated against them."""
    token = irsa.token(cluster, duration="2h")
    claims = jwt_claims(token)
    token_file = irsa.work / "check-token"
    token_file.write_text(token)
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING}
    env.update(AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_ARN=ROLE_ARN, AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_ROLE_SESSION_NAME=SESSION, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    args = ["check", "--trust-policy", str(irsa.trust_policy), "--no-identity"]
    text = passport(*args, env=env, check=False)
    print(text.stdout)
    assert text.returncode == 0, text.stdout + text.stderr
    lines = [line.strip() for line in text.stdout.splitlines()]
    assert f"✓ iss {cluster.issuer}" in lines
    assert f"✓ sub system:serviceaccount:{irsa.namespace}:app" in lines
    assert f"✓ aud {AUDIENCE}" in lines
    assert f"· kubernetes: namespace {irsa.namespace}, service account app, pod app" in lines, lines
    assert any(line.startswith("✓ expires in 1h 59m") or line.startswith("✓ expires in 2h") for line in lines), lines
    assert f"· token maps to principal arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{cluster.issuer.removeprefix('https://')} with sub system:serviceaccount:{irsa.namespace}:app" in lines, lines
    assert "✓ STS would accept this token: allowed by Statement[0]" in lines, lines
    assert claims["exp"] - claims["iat"] == 7200
    assert claims["kubernetes.io"]["pod"]["uid"] == irsa.pod_uid


def test_rotated_token_is_used_at_the_next_attempt(cluster: Cluster, irsa: Irsa):
    """Two real TokenRequests in the kubelet's `..data` layout. The first has the apiserver's
    own audience (what a pod's default token has), so the emulator verifies its signature
    and refuses it; passport backs off (5 to 10 s for a rejected token). The second, for
    sts.amazonaws.com, is swapped in atomically while passport waits; its next attempt
    re-reads the file, the emulator accepts the new token, and boto3 gets the role."""
    wrong = irsa.token(cluster, audience=cluster.issuer, duration="1h")
    right = irsa.token(cluster, duration="3h")
    assert jwt_claims(wrong)["jti"] != jwt_claims(right)["jti"]
    directory = irsa.work / "rotating"
    token_file = kubelet_layout(directory, wrong)
    sidecar = start_sidecar(irsa, token_file, "rotate")
    try:
        def refused() -> bool:
            return any(
                r.get("code") == "InvalidIdentityToken" for r in sidecar.records("credential refresh failed; retrying")
            )

        wait_until("a refused first exchange", refused, STARTUP_TIMEOUT, sidecar.proc, sidecar.log)
        assert http_status(sidecar.admin + "/readyz") != 200
        first_data = os.readlink(directory / "..data")
        kubelet_layout(directory, right)
        assert os.readlink(directory / "..data") != first_data
        assert (directory / "token").read_text() == right

        wait_until("passport serve after the rotation", lambda: http_status(sidecar.admin + "/readyz") == 200,
                   STARTUP_TIMEOUT, sidecar.proc, sidecar.log)
        identity = caller_identity(irsa, sidecar)
        assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/{SESSION}"
        reads = sidecar.records("read web-identity token")
        # The old token once, the new one at the very next attempt.
        assert [r["exp"] for r in reads] == [f"Some({jwt_claims(wrong)['exp']})", f"Some({jwt_claims(right)['exp']})"], reads
    finally:
        stop(sidecar.proc, timeout=10)
