"""`passport webhook` against a real kube-apiserver (tests/k8s/control-plane: etcd and
kube-apiserver on loopback, no kubelet: pods are admitted and stored, never run).

The webhook runs on loopback with a certificate made here (openssl), reading
ServiceAccounts from the apiserver through --kubeconfig. Its MutatingWebhookConfiguration
is the one the Helm chart renders (webhook.enabled=true), with clientConfig turned from the
in-cluster Service into a loopback URL and the test CA as caBundle (there is no Service
routing without a cluster network). Then pods are created through the apiserver and read
back:

* an opted-in pod whose ServiceAccount has passport.dev/role-arn is stored with the
  sidecar, exactly as `passport inject --role-arn` would have added it;
* an opted-in pod without a role is denied, and the user sees the ServiceAccount and the
  annotation in kubectl's error;
* a pod without the label is stored untouched;
* a second mutating webhook that changes the pod after passport makes the apiserver
  reinvoke passport (reinvocationPolicy IfNeeded): the stored pod has one sidecar, and the
  second webhook's change.

Run alone (after `cargo build`, with pytest and PyYAML; helm on PATH or in
$PASSPORT_TOOLS/bin as ./test.sh installs it):

    python3 -m pytest -q -p no:cacheprovider tests/k8s/test_webhook.py
"""

from __future__ import annotations

import base64
import copy
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from test_apiserver import Cluster, cluster, free_ports, passport_bin, stop, wait_until  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
ROLE_ARN = "arn:aws:iam::111122223333:role/webhook-app"
LABEL = "passport.dev/inject"
ROLE_ANNOTATION = "passport.dev/role-arn"


def helm() -> str:
    tools = Path(os.environ.get("PASSPORT_TOOLS", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "passport-tools"))
    found = shutil.which("helm") or shutil.which("helm", path=str(tools / "bin"))
    if not found:
        pytest.fail("helm not found (./test.sh installs it into $PASSPORT_TOOLS/bin)")
    return found


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> None:
    """A CA, and a serving certificate for 127.0.0.1 signed by it."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "1", "-subj", "/CN=webhook test CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(d / "tls.key"), "-out", str(d / "tls.csr"), "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-out", str(d / "tls.crt"), "-days", "1", "-extfile", str(d / "ext"))


class Webhook:
    def __init__(self, proc: subprocess.Popen, url: str, ca: Path, log: Path):
        self.proc, self.url, self.ca, self.log = proc, url, ca, log

    def get(self, path: str) -> tuple[int, str]:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(self.url + path, context=ctx, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, line_prefix: str) -> int:
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(line_prefix + " "):
                return int(float(line.split()[-1]))
        raise AssertionError(f"{line_prefix} not in /metrics:\n{text}")


class Mutator(http.server.BaseHTTPRequestHandler):
    """A second mutating webhook: adds an env variable to every container and an init
    container at the end, so the apiserver reinvokes passport (IfNeeded)."""

    calls = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        pod = req["object"]
        patch = []
        for i, c in enumerate(pod["spec"]["containers"]):
            if not any(e.get("name") == "SECOND_WEBHOOK" for e in c.get("env") or []):
                if "env" in c:
                    patch.append({"op": "add", "path": f"/spec/containers/{i}/env/-", "value": {"name": "SECOND_WEBHOOK", "value": "1"}})
                else:
                    patch.append({"op": "add", "path": f"/spec/containers/{i}/env", "value": [{"name": "SECOND_WEBHOOK", "value": "1"}]})
        Mutator.calls += 1
        response = {"uid": req["uid"], "allowed": True}
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webhook(cluster: Cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("webhook")
    make_certs(d)
    (port,) = free_ports(1)
    log = d / "webhook.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(passport_bin()), "webhook", "--listen", f"127.0.0.1:{port}",
             "--tls-cert-file", str(d / "tls.crt"), "--tls-key-file", str(d / "tls.key"),
             "--kubeconfig", str(cluster.kubeconfig), "--image", "ghcr.io/passport-dev/passport:test", "--region", "us-east-1"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    hook = Webhook(proc, f"https://127.0.0.1:{port}", d / "ca.crt", log)
    try:
        wait_until("passport webhook /readyz", lambda: hook.get("/readyz")[0] == 200, 30, proc, log)
        # The configuration the chart renders, pointed at loopback.
        rendered = subprocess.run(
            [helm(), "template", "passport", str(REPO / "charts" / "passport"), "--namespace", "passport-system",
             "--set", "webhook.enabled=true"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
        (mwc,) = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "MutatingWebhookConfiguration"]
        mwc["metadata"].pop("annotations", None)  # cert-manager's CA injection
        mwc["metadata"]["name"] = "passport-webhook-test"
        ca_bundle = base64.b64encode((d / "ca.crt").read_bytes()).decode()
        for w in mwc["webhooks"]:
            assert w["failurePolicy"] == "Fail" and w["reinvocationPolicy"] == "IfNeeded"
            w["clientConfig"] = {"url": f"{hook.url}/mutate", "caBundle": ca_bundle}
        # The second webhook (sorted after passport's configuration).
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mutator)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(d / "tls.crt"), str(d / "tls.key"))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        second = copy.deepcopy(mwc)
        second["metadata"]["name"] = "zz-second-webhook-test"
        second["webhooks"][0]["name"] = "second.example.com"
        second["webhooks"][0]["clientConfig"] = {"url": f"https://127.0.0.1:{server.server_address[1]}/", "caBundle": ca_bundle}
        second["webhooks"][0]["reinvocationPolicy"] = "Never"
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([mwc, second]))
        hook.second = server
        yield hook
        cluster.kubectl("delete", "mutatingwebhookconfiguration", "passport-webhook-test", "zz-second-webhook-test", check=False)
        server.shutdown()
    finally:
        stop(hook.proc)
    # SIGTERM drains and exits 0.
    assert hook.proc.returncode == 0, log.read_text(errors="replace")


def pod(name: str, sa: str, labelled: bool = True) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL: "true"} if labelled else {"app": name}},
        "spec": {
            "serviceAccountName": sa,
            "automountServiceAccountToken": False,
            "containers": [{"name": "app", "image": "registry.example.com/app:1", "env": [{"name": "A", "value": "1"}]}],
        },
    }


def create(cluster: Cluster, ns: str, obj: dict, check: bool = True) -> subprocess.CompletedProcess:
    return cluster.kubectl("create", "-n", ns, "-o", "json", "-f", "-", input=json.dumps(obj), check=check)


def wait_registered(cluster: Cluster, ns: str) -> None:
    """The apiserver picks up webhook configurations asynchronously: poll a dry run until an
    opted-in pod comes back mutated (start-up only)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = cluster.kubectl("create", "--dry-run=server", "-n", ns, "-o", "json", "-f", "-",
                            input=json.dumps(pod(f"probe-{uuid.uuid4().hex[:6]}", "app")), check=False)
        if r.returncode == 0 and any(c["name"] == "passport" for c in json.loads(r.stdout)["spec"].get("initContainers") or []):
            return
        time.sleep(0.2)
    pytest.fail("the webhook configuration did not take effect within 30s")


@pytest.fixture(scope="module")
def ns(cluster: Cluster, webhook) -> str:
    name = cluster.namespace("webhook")
    cluster.kubectl("create", "serviceaccount", "app", "-n", name)
    cluster.kubectl("annotate", "serviceaccount", "app", "-n", name, f"{ROLE_ANNOTATION}={ROLE_ARN}")
    cluster.kubectl("create", "serviceaccount", "norole", "-n", name)
    wait_registered(cluster, name)
    return name


def stored(cluster: Cluster, ns: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def test_an_opted_in_pod_is_stored_with_the_sidecar_inject_would_add(cluster: Cluster, ns: str, webhook):
    p = pod("app", "app")
    create(cluster, ns, p)
    back = stored(cluster, ns, "app")
    inits = back["spec"]["initContainers"]
    assert [c["name"] for c in inits].count("passport") == 1
    sidecar = inits[0]
    assert sidecar["name"] == "passport" and sidecar["restartPolicy"] == "Always"
    assert {"name": "AWS_ROLE_ARN", "value": ROLE_ARN} in sidecar["env"]
    app = back["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["A"] == "1" and env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:9911/v1/credentials"
    # The same as `passport inject --role-arn` gives for this pod: every field inject wrote
    # is stored as written (the server only adds its defaults).
    injected = yaml.safe_load(subprocess.run(
        [str(passport_bin()), "inject", "--role-arn", ROLE_ARN, "--region", "us-east-1", "--image", "ghcr.io/passport-dev/passport:test"],
        input=yaml.safe_dump({**p, "metadata": {**p["metadata"], "namespace": ns}}),
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout)
    for field in ("initContainers", "volumes"):
        for item in injected["spec"][field]:
            (got,) = [x for x in back["spec"][field] if x["name"] == item["name"]]
            for k, v in item.items():
                assert _subset(v, got[k]), f"{field} {item['name']}.{k}: {got[k]!r} != {v!r}"
    for k, v in injected["metadata"]["annotations"].items():
        assert back["metadata"]["annotations"][k] == v
    # The second webhook ran after passport, and passport was reinvoked without effect.
    assert env["SECOND_WEBHOOK"] == "1"
    # ServiceAccounts came from the watch cache (synced before /readyz said ready).
    assert webhook.metric('passport_webhook_service_account_lookups_total{source="cache"}') > 0


def _subset(want, got) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(_subset(w, g) for w, g in zip(want, got))
    return want == got


def test_reinvocation_does_not_duplicate_the_sidecar(cluster: Cluster, ns: str, webhook):
    unchanged = webhook.metric('passport_webhook_reviews_total{result="unchanged"}')
    calls = webhook.second.RequestHandlerClass.calls
    create(cluster, ns, pod("again", "app"))
    back = stored(cluster, ns, "again")
    names = [c["name"] for c in back["spec"]["initContainers"]]
    assert names.count("passport") == 1, names
    assert [e["name"] for e in back["spec"]["containers"][0]["env"]].count("SECOND_WEBHOOK") == 1
    assert [v["name"] for v in back["spec"]["volumes"]].count("passport-auth") == 1
    # The second webhook changed the pod after passport, so the apiserver called passport
    # again; that review answered with no patch.
    assert webhook.second.RequestHandlerClass.calls > calls
    assert webhook.metric('passport_webhook_reviews_total{result="unchanged"}') > unchanged


def test_a_pod_without_a_role_is_denied_with_the_message(cluster: Cluster, ns: str, webhook):
    gets = webhook.metric('passport_webhook_service_account_lookups_total{source="api"}')
    r = create(cluster, ns, pod("norole", "norole"), check=False)
    # Before denying, the webhook confirmed with a GET what its cache said (no role).
    assert webhook.metric('passport_webhook_service_account_lookups_total{source="api"}') > gets
    assert r.returncode != 0
    assert f"ServiceAccount {ns}/norole" in r.stderr and ROLE_ANNOTATION in r.stderr, r.stderr
    assert 'admission webhook "pods.passport.dev" denied the request' in r.stderr, r.stderr
    assert cluster.kubectl("get", "pod", "norole", "-n", ns, check=False).returncode != 0


def test_a_pod_without_the_label_is_untouched(cluster: Cluster, ns: str, webhook):
    skipped = webhook.metric('passport_webhook_reviews_total{result="skipped"}')
    create(cluster, ns, pod("plain", "norole", labelled=False))
    back = stored(cluster, ns, "plain")
    assert "initContainers" not in back["spec"]
    assert not (back["metadata"].get("annotations") or {})
    assert [c["name"] for c in back["spec"]["containers"]] == ["app"]
    # The objectSelector kept it from passport altogether.
    assert webhook.metric('passport_webhook_reviews_total{result="skipped"}') == skipped


def test_host_network_and_bad_annotations_are_denied(cluster: Cluster, ns: str, webhook):
    p = pod("hostnet", "app")
    p["spec"]["hostNetwork"] = True
    r = create(cluster, ns, p, check=False)
    assert r.returncode != 0 and "hostNetwork" in r.stderr, r.stderr
    p = pod("badrole", "app")
    p["metadata"]["annotations"] = {ROLE_ANNOTATION: "arn:aws:iam::nope"}
    r = create(cluster, ns, p, check=False)
    assert r.returncode != 0 and f'{ROLE_ANNOTATION} "arn:aws:iam::nope"' in r.stderr, r.stderr


def test_a_service_account_annotated_just_before_its_pod_is_found(cluster: Cluster, ns: str, webhook):
    """A cache miss (or a stale entry without the role) must not deny: annotate and create
    at once. (Whether the watch delivered the annotation first is a race; either way the
    pod must be admitted, a GET confirming a cached entry without a role.)"""
    cluster.kubectl("create", "serviceaccount", "fresh", "-n", ns)
    cluster.kubectl("annotate", "serviceaccount", "fresh", "-n", ns, f"{ROLE_ANNOTATION}={ROLE_ARN}")
    r = create(cluster, ns, pod("fresh", "fresh"), check=False)
    assert r.returncode == 0, r.stderr
    assert stored(cluster, ns, "fresh")["spec"]["initContainers"][0]["name"] == "passport"


def test_self_managed_certificates(cluster: Cluster, ns: str, webhook, tmp_path):
    """--self-managed-ca-secret: the webhook makes its CA (kept in a Secret), its serving
    certificate, and sets the caBundle of the chart's configuration (rendered with
    webhook.certificates=self-managed, which has none). A second replica signs with the
    same CA. Pods of its own label then pass through it (failurePolicy Fail: an untrusted
    certificate would deny them)."""
    rendered = subprocess.run(
        [helm(), "template", "passport", str(REPO / "charts" / "passport"), "--namespace", "passport-system",
         "--set", "webhook.enabled=true", "--set", "webhook.certificates=self-managed"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (mwc,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    (deploy,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "passport-webhook"]
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--self-managed-ca-secret=passport-system/passport-webhook-ca" in args, args
    assert "--webhook-configuration=passport-webhook" in args, args
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    (port, port2) = free_ports(2)
    name = "passport-webhook-sm-test"
    mwc["metadata"]["name"] = name
    mwc["webhooks"][0]["clientConfig"] = {"url": f"https://127.0.0.1:{port}/mutate"}
    mwc["webhooks"][0]["objectSelector"]["matchLabels"]["self-managed-test"] = "yes"
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(mwc))
    cluster.ensure("namespace", "passport-system")
    procs = []

    def start(p: int, d: Path) -> subprocess.Popen:
        d.mkdir()
        log = d / "log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(passport_bin()), "webhook", "--listen", f"127.0.0.1:{p}",
                 "--tls-cert-file", str(d / "tls.crt"), "--tls-key-file", str(d / "tls.key"),
                 "--kubeconfig", str(cluster.kubeconfig), "--image", "ghcr.io/passport-dev/passport:test", "--region", "us-east-1",
                 "--self-managed-ca-secret", "passport-system/passport-webhook-ca",
                 "--webhook-configuration", name, "--dns-name", "127.0.0.1"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        unverified = ssl._create_unverified_context()  # readiness only; trust is checked below

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{p}/readyz", context=unverified, timeout=2) as r:
                    return r.status == 200
            except urllib.error.HTTPError:
                return False
        wait_until("self-managed webhook /readyz", ready, 30, proc, log)
        return proc

    try:
        start(port, tmp_path / "one")
        secret = json.loads(cluster.kubectl("get", "secret", "passport-webhook-ca", "-n", "passport-system", "-o", "json").stdout)
        ca_pem = base64.b64decode(secret["data"]["ca.crt"])
        assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["ca.key"])
        stored_mwc = json.loads(cluster.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout)
        assert base64.b64decode(stored_mwc["webhooks"][0]["clientConfig"]["caBundle"]) == ca_pem
        (tmp_path / "ca.crt").write_bytes(ca_pem)
        # A second replica: same CA, its own serving certificate.
        start(port2, tmp_path / "two")
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        for p in (port, port2):
            with urllib.request.urlopen(f"https://127.0.0.1:{p}/healthz", context=ctx, timeout=5) as r:
                assert r.status == 200
        assert (tmp_path / "one" / "tls.crt").read_bytes() != (tmp_path / "two" / "tls.crt").read_bytes()
        # The apiserver trusts it: an opted-in pod with this webhook's label is admitted.
        p = pod("selfmanaged", "app")
        p["metadata"]["labels"]["self-managed-test"] = "yes"
        deadline = time.monotonic() + 30
        while True:
            r = create(cluster, ns, p, check=False)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the apiserver picks up the new caBundle asynchronously
        assert r.returncode == 0, r.stderr
        back = stored(cluster, ns, "selfmanaged")
        assert [c["name"] for c in back["spec"]["initContainers"]].count("passport") == 1
    finally:
        for proc in procs:
            stop(proc)
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, check=False)
