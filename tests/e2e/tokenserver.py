#!/usr/bin/env python3
"""A token server for the distribution registry's token auth, for tests.

Serves the Docker token protocol:
  GET  /token?service=S&scope=repository:NAME:pull   (Basic credentials or anonymous)
  POST /token  (OAuth2 form: grant_type=password | refresh_token)
and signs RS256 JWTs whose x5c header carries a certificate issued by the
test CA, which the registry trusts through auth.token.rootcertbundle.

Every request is logged to --log as one JSON line (method, grant type,
whether credentials came with it) so tests can check what the client did.
Secrets are never logged.
"""
import argparse
import base64
import datetime
import json
import os
import secrets
import ssl
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ISSUER = "edgefetch-test-issuer"


def make_signing_pair(ca_cert_path, ca_key_path):
    ca_cert = x509.load_pem_x509_certificate(open(ca_cert_path, "rb").read())
    ca_key = serialization.load_pem_private_key(open(ca_key_path, "rb").read(), None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return key, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, **kw):
        with open(self.server.opts.log, "a") as f:
            f.write(json.dumps(kw) + "\n")

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="token"')
        self.end_headers()
        self.wfile.write(data)

    def check(self, user, password):
        return self.server.users.get(user) == password

    def token(self, user, scopes, offline):
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name = ":".join(parts[1:-1])
            actions = [a for a in parts[-1].split(",") if a in ("pull", "push")]
            if user is None:
                actions = ["pull"] if self.server.opts.anonymous_pull and "pull" in actions else []
            access.append({"type": "repository", "name": name, "actions": actions})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": self.server.opts.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        tok = jwt.encode(claims, self.server.key, algorithm="RS256",
                         headers={"x5c": [self.server.x5c], "typ": "JWT"})
        body = {"token": tok, "access_token": tok, "expires_in": 300,
                "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        if offline and user:
            rt = secrets.token_hex(16)
            self.server.refresh[rt] = user
            body["refresh_token"] = rt
        return body

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/token":
            return self.reply(404, {"error": "not found"})
        q = urllib.parse.parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization")
        if auth and auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if not self.check(u, p):
                self.record(method="GET", auth=True, ok=False)
                return self.reply(401, {"error": "bad credentials"})
            user = u
        self.record(method="GET", auth=user is not None, ok=True, scope=q.get("scope", []))
        self.reply(200, self.token(user, q.get("scope", []), q.get("offline_token") == ["true"]))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if self.server.opts.no_oauth:
            self.record(method="POST", grant=None, ok=False)
            return self.reply(404, {"error": "no oauth here"})
        grant = form.get("grant_type", [""])[0]
        scopes = " ".join(form.get("scope", [])).split()
        if grant == "password":
            u, p = form.get("username", [""])[0], form.get("password", [""])[0]
            if not self.check(u, p):
                self.record(method="POST", grant=grant, ok=False)
                return self.reply(401, {"error": "invalid_grant"})
            user = u
        elif grant == "refresh_token":
            user = self.server.refresh.get(form.get("refresh_token", [""])[0])
            if user is None:
                self.record(method="POST", grant=grant, ok=False)
                return self.reply(401, {"error": "invalid_grant"})
        else:
            self.record(method="POST", grant=grant, ok=False)
            return self.reply(400, {"error": "unsupported_grant_type"})
        self.record(method="POST", grant=grant, ok=True, scope=scopes)
        self.reply(200, self.token(user, scopes, form.get("access_type") == ["offline"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca-cert", required=True)
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--service", default="edgefetch-test")
    ap.add_argument("--anonymous-pull", action="store_true")
    ap.add_argument("--no-oauth", action="store_true", help="answer 404 to POST, as GCR-like servers do")
    ap.add_argument("--refresh-token", action="append", default=[], help="USER:TOKEN accepted as a refresh token")
    opts = ap.parse_args()

    srv = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    srv.opts = opts
    srv.users = dict(line.strip().split(":", 1) for line in open(opts.users) if ":" in line)
    srv.refresh = {}
    for rt in opts.refresh_token:
        u, _, t = rt.partition(":")
        srv.refresh[t] = u
    srv.key, srv.x5c = make_signing_pair(opts.ca_cert, opts.ca_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    os.environ.pop("SSL_CERT_FILE", None)
    srv.serve_forever()


if __name__ == "__main__":
    main()
