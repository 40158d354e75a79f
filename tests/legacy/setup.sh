#!/usr/bin/env bash
# Install what the legacy client suite needs; idempotent, cheap when nothing changed.
#
# - iptables (Debian's package) when missing: the suite applies the overlays' redirect rules
#   inside its own network namespaces. Needs root and apt, as on this project's machines.
# - The legacy Python client (requirements.txt, constraints.txt) in this suite's OWN
#   virtualenv, $PASSPORT_LEGACY_VENV (default tests/legacy/.venv), rebuilt when the pins or
#   the interpreter change. Interpreter: $LEGACY_PYTHON if set, else CPython 3.7 from pyenv
#   (botocore 1.12's own era) when the machine has it, else python3 with the documented
#   sitecustomize.py shim copied into that virtualenv only (old botocore's vendored
#   `requests` imports collections.Mapping, gone since Python 3.10). The SDK is never patched.
# - The legacy JavaScript client: `npm ci` in tests/legacy/node (package-lock.json).
#
#   tests/legacy/setup.sh          # then: python3 -m pytest tests/legacy
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! command -v iptables >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "legacy setup: installing iptables (Debian)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
    else
        echo "legacy setup: iptables missing and cannot be installed here (not root or no apt-get)" >&2
    fi
fi

venv=${PASSPORT_LEGACY_VENV:-$here/.venv}
python=${LEGACY_PYTHON:-}
if [[ -z $python ]]; then
    pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for candidate in "$pyenv_root"/versions/3.7.*/bin/python3 "$(command -v python3.7 || true)"; do
        if [[ -n $candidate && -x $candidate ]]; then python=$candidate; break; fi
    done
fi
python=${python:-python3}
python_version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
shim=no
if "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then shim=yes; fi

stamp="$venv/.legacy-stamp"
want=$(cat "$here/requirements.txt" "$here/constraints.txt" "$here/sitecustomize.py" | sha256sum | cut -d' ' -f1)
want="$want $python_version shim=$shim"
if [[ ! -x $venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "legacy setup: virtualenv $venv (Python $python_version, shim=$shim)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$here/requirements.txt" -c "$here/constraints.txt"
    if [[ $shim == yes ]]; then
        site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        cp "$here/sitecustomize.py" "$site/sitecustomize.py"
    fi
    echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import boto3, botocore, sys; print("legacy setup: boto3", boto3.__version__, "botocore", botocore.__version__, "on Python", sys.version.split()[0])'

lock_sum=$(sha256sum "$here/node/package-lock.json" | cut -d' ' -f1)
if [[ "$(cat "$here/node/node_modules/.legacy-stamp" 2>/dev/null)" != "$lock_sum" ]]; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" > "$here/node/node_modules/.legacy-stamp"
fi
node -e 'console.log("legacy setup: aws-sdk", require(process.argv[1]).VERSION, "on node", process.version)' "$here/node/node_modules/aws-sdk"
