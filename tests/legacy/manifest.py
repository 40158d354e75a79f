"""Read a pod out of a rendered kustomization, so the suite runs what the manifest says.

From `kubectl kustomize k8s/<dir>` this takes:
- every init container whose command is `iptables` (the redirect rules), verbatim;
- the passport container's args and environment;
- the application container's environment;
- the volumes both mount, laid out in a temp dir the way the kubelet does: an emptyDir is a
  directory, a Secret volume is the kubelet's atomic-writer layout (`..data` -> a timestamped
  directory, each key a symlink through `..data`), so a rotation is the same `..data` swap.

Environment values are resolved like the kubelet: `value`, `fieldRef` (metadata.name and
metadata.namespace of the pod), `secretKeyRef` (from the Secret given to the pod). Values
that are paths under a volume's mountPath are rewritten to that volume's temp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
POD_NAME = "app-legacy"
POD_NAMESPACE = "default"


def render(kustomization: str) -> list[dict]:
    """`kubectl kustomize k8s/<kustomization>` parsed; fails the test if it does not render."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(REPO_ROOT / "k8s" / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise AssertionError(f"k8s/{kustomization} does not render: {done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def pod_spec(docs: list[dict]) -> dict:
    workloads = [d for d in docs if d.get("kind") in ("Deployment", "Job", "StatefulSet", "DaemonSet")]
    assert len(workloads) == 1, f"expected one workload, got {[d.get('kind') for d in workloads]}"
    return workloads[0]["spec"]["template"]["spec"]


def redirect_rules(spec: dict) -> list[list[str]]:
    """The full argv of every init container that runs iptables (command + args)."""
    rules = []
    for c in spec.get("initContainers", []):
        argv = list(c.get("command", [])) + list(c.get("args", []))
        if argv and os.path.basename(argv[0]).startswith("iptables"):
            rules.append([str(a) for a in argv])
    return rules


def container(spec: dict, name: str) -> dict:
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        if c["name"] == name:
            return c
    raise AssertionError(f"no container named {name!r} in the pod")


class SecretVolume:
    """A Secret mounted as the kubelet does it, with `..data` swapped on update."""

    def __init__(self, root: Path, data: dict[str, str]):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        self.update(data)
        for key in data:
            (root / key).symlink_to(Path("..data") / key)

    def update(self, data: dict[str, str]) -> None:
        self.generation += 1
        stamp = root_stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.generation:04d}"
        target = self.root / root_stamp
        target.mkdir()
        for key, value in data.items():
            (target / key).write_text(value)
            (target / key).chmod(0o440)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(stamp)
        old = (self.root / "..data").resolve() if (self.root / "..data").is_symlink() else None
        os.replace(tmp, self.root / "..data")
        if old is not None:
            shutil.rmtree(old)


@dataclass
class Pod:
    """One pod's containers, resolved against a temp dir."""

    spec: dict
    workdir: Path
    secrets: dict[str, dict[str, str]]
    volumes: dict[str, Path] = field(default_factory=dict)
    secret_volumes: dict[str, SecretVolume] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for vol in self.spec.get("volumes", []):
            path = self.workdir / "volumes" / vol["name"]
            if "secret" in vol:
                name = vol["secret"]["secretName"]
                assert name in self.secrets, f"volume {vol['name']} needs Secret {name!r}, not provided"
                self.secret_volumes[vol["name"]] = SecretVolume(path, self.secrets[name])
            else:
                path.mkdir(parents=True)
            self.volumes[vol["name"]] = path

    def rotate_secret(self, secret: str, data: dict[str, str]) -> None:
        self.secrets[secret] = data
        for vol in self.spec.get("volumes", []):
            if vol.get("secret", {}).get("secretName") == secret:
                self.secret_volumes[vol["name"]].update(data)

    def _mounts(self, c: dict) -> list[tuple[str, Path]]:
        mounts = [(m["mountPath"].rstrip("/"), self.volumes[m["name"]]) for m in c.get("volumeMounts", [])]
        return sorted(mounts, key=lambda m: -len(m[0]))

    def env(self, name: str) -> dict[str, str]:
        c = container(self.spec, name)
        out: dict[str, str] = {}
        for e in c.get("env", []):
            if "value" in e:
                value = str(e["value"])
            elif "valueFrom" in e and "fieldRef" in e["valueFrom"]:
                value = {"metadata.name": POD_NAME, "metadata.namespace": POD_NAMESPACE}[
                    e["valueFrom"]["fieldRef"]["fieldPath"]
                ]
            elif "valueFrom" in e and "secretKeyRef" in e["valueFrom"]:
                ref = e["valueFrom"]["secretKeyRef"]
                value = self.secrets[ref["name"]][ref["key"]]
            else:
                raise AssertionError(f"container {name}: env {e} not understood by the harness")
            for mount, path in self._mounts(c):
                if value == mount or value.startswith(mount + "/"):
                    value = str(path) + value[len(mount) :]
                    break
            out[e["name"]] = value
        return out

    def args(self, name: str) -> list[str]:
        c = container(self.spec, name)
        return [str(a) for a in c.get("command", [])[1:] + c.get("args", [])]
