"""A pod's network as the kernel sees it: one network namespace per test "pod".

Layout (all made here, all removed on exit, nothing touches the host's own network):

    pod namespace  pplg<pid>p<n>: lo (127.0.0.1, ::1), veth 192.0.2.2/24, default route
                                  via 192.0.2.1; passport, the emulator and the client
    node namespace pplg<pid>n<n>: the veth's other end, 192.0.2.1/24, and nothing else

The default route exists so that 169.254.169.254 and 169.254.170.2 are routable from the
pod, as in a real pod: without a route, connect() fails before the nat OUTPUT chain (where
the overlays' REDIRECT rules live) is ever consulted. The route leads into a namespace of
our own with no further route, so a packet that escapes a broken rule dies there and the
client times out (192.0.2.0/24 is TEST-NET-1, never a real host).
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess

PREFIX = "pplg"
_live: list["PodNetns"] = []
_counter = 0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, stdin=subprocess.DEVNULL)


def usable() -> str | None:
    """None when this process can make network namespaces and run iptables; else why not."""
    if os.geteuid() != 0:
        return "not root (network namespaces and iptables need CAP_NET_ADMIN)"
    for tool in ("ip", "iptables"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            return f"`{tool}` not found (tests/legacy/setup.sh installs iptables)"
    name = f"{PREFIX}{os.getpid()}probe"
    done = _ip("netns", "add", name, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    try:
        nat = subprocess.run(
            ["ip", "netns", "exec", name, "iptables", "--wait", "-t", "nat", "-L", "OUTPUT", "-n"],
            capture_output=True,
            text=True,
        )
        if nat.returncode != 0:
            return f"iptables nat table unusable in a namespace: {nat.stderr.strip()}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


def remove_stale() -> None:
    """Delete namespaces this suite left behind in runs whose process is gone."""
    listing = _ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.fullmatch(rf"{PREFIX}(\d+)\D.*", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _ip("netns", "del", name, check=False)


class PodNetns:
    def __init__(self) -> None:
        global _counter
        _counter += 1
        tag = f"{os.getpid()}x{_counter}"
        self.pod = f"{PREFIX}{tag}p"
        self.node = f"{PREFIX}{tag}n"
        # Interface names: at most 15 bytes.
        self.veth_pod = f"vp{tag}"[:15]
        self.veth_node = f"vn{tag}"[:15]
        self.up = False

    def create(self) -> "PodNetns":
        _live.append(self)
        _ip("netns", "add", self.pod)
        _ip("netns", "add", self.node)
        self.up = True
        _ip("link", "add", self.veth_pod, "netns", self.pod, "type", "veth", "peer", "name", self.veth_node, "netns", self.node)
        for ns, dev, addr in ((self.pod, self.veth_pod, "192.0.2.2/24"), (self.node, self.veth_node, "192.0.2.1/24")):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", addr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", self.pod, "route", "add", "default", "via", "192.0.2.1")
        return self

    def argv(self, *cmd: str) -> list[str]:
        """`cmd` run inside the pod namespace (ip netns exec execs it: same pid, signals reach it)."""
        return ["ip", "netns", "exec", self.pod, *cmd]

    def run(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.argv(*cmd), **kwargs)

    def delete(self) -> None:
        if self.up:
            _ip("netns", "del", self.pod, check=False)
            _ip("netns", "del", self.node, check=False)
            self.up = False
        if self in _live:
            _live.remove(self)


@atexit.register
def _cleanup() -> None:
    for ns in list(_live):
        ns.delete()
