#!/usr/bin/env python3
"""A stand-in STS for the benchmark: answers AssumeRoleWithWebIdentity (any token) with
fresh 1-hour credentials whose sizes match real ones. Usage: fake_sts.py PORT"""
import datetime
import http.server
import secrets
import sys

CALLS = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global CALLS
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        CALLS += 1
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        body = f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:bench:bench</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bench/bench</Arn>
      <AssumedRoleId>AROAEXAMPLEBENCH:bench</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIA{secrets.token_hex(8).upper()}</AccessKeyId>
      <SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>
      <SessionToken>{secrets.token_urlsafe(700)}</SessionToken>
      <Expiration>{exp.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
