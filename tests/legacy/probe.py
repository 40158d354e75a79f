"""One HTTP GET from wherever it runs (the harness runs it inside a pod namespace).

Usage: python probe.py URL [HEADER=VALUE ...]
Prints {"status": N, "body": "..."} ({"status": 0, "error": ...} when nothing answers).
"""

import json
import sys
import urllib.error
import urllib.request

url, headers = sys.argv[1], dict(h.split("=", 1) for h in sys.argv[2:])
try:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode(errors="replace")}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode(errors="replace")}))
except OSError as e:
    print(json.dumps({"status": 0, "error": str(e)}))
