"""Compatibility shim for botocore 1.12.0 on CPython >= 3.10 (legacy client suite only).

botocore below 1.13.45 vendors a `requests` that does `from collections import Mapping`
(and `MutableMapping`, ...). Those aliases left `collections` in Python 3.10, so the import
fails before any SDK code runs. This module aliases them back from `collections.abc`; the
SDK itself is not touched.

tests/legacy/setup.sh copies it into the suite's own virtualenv (site-packages) only when
no older CPython (3.7, botocore 1.12's own era) is available. Python imports
`sitecustomize` at start-up, so it applies to that virtualenv's interpreter and nothing else.
"""

import collections
import collections.abc

for _name in ("Mapping", "MutableMapping", "Sequence", "MutableSequence", "Set", "MutableSet", "Callable", "Iterable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
