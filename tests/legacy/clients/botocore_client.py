"""Legacy client: boto3 1.9.0 / botocore 1.12.0, unmodified, with only its era's variables.

Usage: python botocore_client.py STS_ENDPOINT

Resolves credentials through botocore's default chain (whatever the environment offers),
then calls GetCallerIdentity. botocore 1.12 has no AWS_ENDPOINT_URL_STS, so the STS endpoint
is passed the way that era's code did it: `endpoint_url=` on the client (and the region,
which botocore 1.12 reads only from AWS_DEFAULT_REGION, from AWS_REGION as well).
Prints one JSON line: {"ok": true, "arn", "method", "access_key", "versions"} or
{"ok": false, "error", "message", "versions"}; exit 0 / 1.
"""

import json
import os
import sys

import boto3
import botocore

versions = {"boto3": boto3.__version__, "botocore": botocore.__version__, "python": sys.version.split()[0]}


def main():
    endpoint = sys.argv[1]
    try:
        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise RuntimeError("no credentials: the default chain found nothing")
        frozen = credentials.get_frozen_credentials()
        # botocore 1.12 reads only AWS_DEFAULT_REGION; the manifests set AWS_REGION (the
        # modern name), so the region is passed explicitly, like the endpoint.
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        sts = session.client("sts", endpoint_url=endpoint, region_name=region)
        identity = sts.get_caller_identity()
    except Exception as e:  # every failure is a result to report, not a crash
        print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e), "versions": versions}))
        return 1
    print(
        json.dumps(
            {
                "ok": True,
                "arn": identity["Arn"],
                "method": credentials.method,
                "access_key": frozen.access_key,
                "versions": versions,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
