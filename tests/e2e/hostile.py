#!/usr/bin/env python3
"""A hostile registry for the tests: HTTPS, no auth, and one way of lying.

  hostile.py --port P --cert C --key K --layout OCI_DIR --scenario NAME [--log FILE]

It serves the image of an OCI layout (tag "1.0" from index.json, blobs from
blobs/sha256) for any repository, honestly except for what the scenario
changes:

  plain            nothing: an honest registry (Range honoured)
  esc-mediatype    the manifest's mediaType carries ESC and BEL bytes
  huge-mediatype   the manifest's mediaType is 1 MB long
  esc-digest       Docker-Content-Digest carries ESC and BEL bytes
  zeros            the manifest is 4 MiB of [0,0,0,...]
  wide-index       the manifest is an index of 36,000 entries
  deep             the manifest is 4 MiB of [[[[...]]]]
  long-string      the manifest carries an annotation of 4 MiB less a little
  many-keys        the manifest's annotations are 270,000 keys (3.9 MB)
  padded           the real manifest, then 4 MiB less a little of blanks
  big-challenge    /v2/ answers 401 with a 200 KB WWW-Authenticate
  long-bearer      /v2/ answers 401 with a Bearer challenge of 9 KiB
  bad-range        every blob request gets 206 with a Content-Range from byte 1
  deny-docker      honest, but dockerd (its User-Agent) gets 404 for everything

Every request line goes to --log.
"""
import argparse
import json
import os
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.opts.log:
            with open(self.server.opts.log, "a") as f:
                f.write("%s %s\n" % (self.command, self.path))

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def blob(self, digest):
        path = os.path.join(self.server.opts.layout, "blobs", "sha256", digest.split(":", 1)[1])
        with open(path, "rb") as f:
            return f.read()

    def manifest(self, ref):
        o, sc = self.server.opts, self.server.opts.scenario
        idx = json.load(open(os.path.join(o.layout, "index.json")))
        desc = idx["manifests"][0]
        if ref.startswith("sha256:"):
            desc = {"digest": ref, "mediaType": OCI_MANIFEST}
        body = self.blob(desc["digest"])
        ctype = desc.get("mediaType", OCI_MANIFEST)
        headers = [("Content-Type", ctype)]
        if sc == "esc-mediatype":
            m = json.loads(body)
            m["mediaType"] = OCI_MANIFEST + "\x1b[31m\x07\x1b]0;pwned\x07"
            body = json.dumps(m).encode()
        elif sc == "huge-mediatype":
            m = json.loads(body)
            m["mediaType"] = "application/" + "x" * (1 << 20)
            body = json.dumps(m).encode()
        elif sc == "zeros":
            n = (4 << 20) // 2 - 2
            body = b"[" + b"0," * n + b"0]"
        elif sc == "deep":
            n = (4 << 20) // 2
            body = b"[" * n + b"]" * n
        elif sc == "long-string":
            m = json.loads(body)
            m.setdefault("annotations", {})["x"] = "y" * ((4 << 20) - len(body) - 64)
            body = json.dumps(m, separators=(",", ":")).encode()
        elif sc == "many-keys":
            m = json.loads(body)
            m["annotations"] = {"k%06d" % i: "v" for i in range(270000)}
            body = json.dumps(m, separators=(",", ":")).encode()
        elif sc == "padded":
            body = body + b" " * ((4 << 20) - len(body) - 16)
        elif sc == "wide-index":
            e = {"mediaType": "a/b", "digest": "sha256:" + "a" * 64, "size": 1}
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [e] * 36000},
                              separators=(",", ":")).encode()
            headers = [("Content-Type", OCI_INDEX)]
        if sc == "esc-digest":
            headers.append(("Docker-Content-Digest", "sha256:\x1b]0;pwned\x07\x1b[2J" + "0" * 40))
        return body, headers

    def do_GET(self):
        sc = self.server.opts.scenario
        if sc == "deny-docker" and "docker/" in self.headers.get("User-Agent", ""):
            return self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"not for docker"}]}')
        if self.path == "/v2/":
            if sc == "big-challenge":
                v = 'Bearer realm="https://127.0.0.1:1/token",service="%s"' % ("A" * 200000)
                return self.reply(401, b"{}", [("WWW-Authenticate", v)])
            if sc == "long-bearer":
                v = 'Bearer realm="https://127.0.0.1:1/%s"' % ("a" * 9000)
                return self.reply(401, b"{}", [("WWW-Authenticate", v)])
            return self.reply(200, b"{}")
        parts = self.path.split("?")[0].split("/")
        if len(parts) >= 5 and parts[-2] == "manifests":
            body, headers = self.manifest(parts[-1])
            return self.reply(200, body, headers)
        if len(parts) >= 5 and parts[-2] == "blobs":
            try:
                body = self.blob(parts[-1])
            except OSError:
                return self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            rng = self.headers.get("Range")
            if sc == "bad-range":
                cr = "bytes 1-%d/%d" % (len(body) - 1, len(body))
                return self.reply(206, body[1:], [("Content-Range", cr)])
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                cr = "bytes %d-%d/%d" % (start, len(body) - 1, len(body))
                return self.reply(206, body[start:], [("Content-Range", cr)])
            return self.reply(200, body, [("Content-Type", "application/octet-stream")])
        return self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}')

    do_HEAD = do_GET


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--layout", required=True)
    ap.add_argument("--scenario", default="plain")
    ap.add_argument("--log")
    opts = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    srv.opts = opts
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
