#!/usr/bin/env python3
"""A TLS-terminating HTTP proxy in front of the real registry, for fault tests.

It forwards every request to --upstream and streams the answer back, and on
the way it can misbehave as edge links and registries do. What it does is
read from the JSON file --control before every request, so a test can
change it while a pull runs:

  rate           bytes/s for each response body (0 = unlimited)
  link_rate      bytes/s for all response bodies together, as one link
                 carries them (0 = unlimited)
  ignore_range   drop the client's Range header (the server answers 200)
  cut_after      close the connection after this many body bytes ...
  cut_count      ... on this many blob responses
  status429      answer this many blob requests with 429 ...
  retry_after    ... and this Retry-After (seconds)
  redirect_blobs answer blob requests with 307 to this base URL (another host)
  corrupt        flip the first byte of every blob body (a lying mirror)
  stall          send no more blob bytes while set (a link that is down)
  corrupt_ranges flip the first byte of every 206 blob body (a registry whose
                 ranges lie, whole blobs right)
  hang_range     the first 206 blob answer to a piece past byte 0 sends its
                 headers, then nothing, its connection held open (a
                 connection the link lost without a reset): counted as hangs

It writes counters to --stats (JSON): blob body bytes sent, blob GETs (and HEADs),
requests that carried Range, 429s sent, cuts made, redirects, requests
that came with an Authorization header (client_auth), with containerd's
?ns= (ns_queries) or an X-Edge-Site header, manifests asked by tag and by
digest, blobs corrupted, the most blob bodies it sent at once
(bodies_in_flight_max) and the most distinct blobs among them
(blobs_in_flight_max), and every blob GET in the order it came, as
[digest, Range header or ""] (blob_gets).
"""
import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # a modest send buffer: what the counters say was sent is then close
        # to what reached the client, not what sat in our socket when it hung up
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 131072)

    def log_message(self, fmt, *args):
        pass

    def control(self):
        try:
            with open(self.server.opts.control) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save(self):
        """Write the counters to --stats (the caller holds the lock)."""
        tmp = "%s.%d.tmp" % (self.server.opts.stats, threading.get_ident())
        with open(tmp, "w") as f:
            json.dump(self.server.stats, f)
        os.replace(tmp, self.server.opts.stats)

    def bump(self, key, n=1, write=True):
        with self.server.lock:
            self.server.stats[key] = self.server.stats.get(key, 0) + n
            if write:
                self.save()

    def fly(self, d):
        """One more (d=1) or one fewer (d=-1) body of this request's blob on its way."""
        blob = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            f = self.server.flying
            f[blob] = f.get(blob, 0) + d
            if f[blob] == 0:
                del f[blob]
            st = self.server.stats
            st["blobs_in_flight_max"] = max(len(f), st.get("blobs_in_flight_max", 0))
            st["bodies_in_flight_max"] = max(sum(f.values()), st.get("bodies_in_flight_max", 0))
            self.save()

    def take(self, key, limit):
        """True while fewer than limit events of this kind happened."""
        with self.server.lock:
            used = self.server.used.get(key, 0)
            if used >= limit:
                return False
            self.server.used[key] = used + 1
            return True

    def forward(self):
        ctl = self.control()
        blob = "/blobs/" in self.path
        if blob:
            self.bump("blob_requests" if self.command == "GET" else "blob_heads")
            if self.command == "GET":
                with self.server.lock:
                    self.server.stats.setdefault("blob_gets", []).append(
                        [self.path.rsplit("/", 1)[-1], self.headers.get("Range") or ""])
            if self.headers.get("Range"):
                self.bump("range_requests")
        if self.headers.get("Authorization"):
            self.bump("client_auth")
        if "ns=" in self.path.partition("?")[2]:
            self.bump("ns_queries")
        if self.headers.get("X-Edge-Site"):
            self.bump("site_header")
        if "/manifests/" in self.path:
            self.bump("manifest_by_digest" if "/manifests/sha256:" in self.path else "manifest_by_tag")
        if blob and ctl.get("redirect_blobs"):
            # as a registry with a storage redirect answers: 307 to another host
            self.bump("redirects")
            self.send_response(307)
            self.send_header("Location", ctl["redirect_blobs"] + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if blob and self.take("429", int(ctl.get("status429", 0))):
            self.bump("429s")
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            self.send_response(429)
            self.send_header("Retry-After", str(ctl.get("retry_after", 1)))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        # a list, not a dict: clients send several Accept lines
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP
                   and not (ctl.get("ignore_range") and k.lower() == "range")]
        if self.server.opts.inject_auth:  # a storage host: it authorises itself upstream
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
            headers.append(("Authorization", "Basic " + base64.b64encode(self.server.opts.inject_auth.encode()).decode()))
        n = int(self.headers.get("Content-Length", "0") or 0)
        req_body = self.rfile.read(n) if n else None
        try:
            up = http.client.HTTPSConnection(self.server.opts.upstream, context=self.server.upctx, timeout=30)
            up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                up.putheader(k, v)
            up.endheaders(req_body)
            r = up.getresponse()
        except OSError:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response_only(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            up.close()
            return
        rate = float(ctl.get("rate", 0))
        self.link_rate = float(ctl.get("link_rate", 0))
        cut = int(ctl.get("cut_after", 0))
        length = int(r.getheader("Content-Length") or 0)
        cutting = (blob and 0 < cut < length and r.status in (200, 206)
                   and self.take("cut", int(ctl.get("cut_count", 0))))
        sent, start = 0, time.monotonic()
        self.corrupt = blob and ((bool(ctl.get("corrupt")) and r.status in (200, 206))
                                 or (bool(ctl.get("corrupt_ranges")) and r.status == 206))
        if (blob and r.status == 206 and ctl.get("hang_range")
                and not (r.getheader("Content-Range") or "bytes 0-").startswith("bytes 0-")
                and self.take("hang", 1)):
            self.bump("hangs")
            self.hang()
            up.close()
            return
        flying = blob and r.status in (200, 206)
        if flying:
            self.fly(1)
        try:
            self.stream(r, up, blob, rate, cut, cutting, sent, start)
        finally:
            if flying:
                self.fly(-1)
            self.bump("responses")

    def hang(self):
        """Send nothing until the client gives the connection up (60 s at most)."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.settimeout(60)
        try:
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    def stream(self, r, up, blob, rate, cut, cutting, sent, start):
        while True:
            slow = min(x for x in (rate, self.link_rate, 1 << 30) if x > 0)
            chunk = r.read(max(1024, min(16384, int(slow / 20))))
            if not chunk:
                break
            if self.corrupt:
                chunk, self.corrupt = bytes([chunk[0] ^ 0xFF]) + chunk[1:], False
                self.bump("corrupted")
            if cutting and sent + len(chunk) > cut:
                chunk = chunk[: cut - sent]
                self.wfile.write(chunk)
                if blob:
                    self.bump("blob_bytes", len(chunk), write=False)
                self.bump("cuts")
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                up.close()
                return
            while blob and self.control().get("stall"):
                time.sleep(0.1)  # the link is down: nothing moves, nothing is reset
            try:
                self.wfile.write(chunk)
            except OSError:
                up.close()
                return
            sent += len(chunk)
            if blob:
                self.bump("blob_bytes", len(chunk), write=sent % (1 << 20) < len(chunk))
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if blob and self.link_rate:
                self.carry(len(chunk))
        up.close()

    def carry(self, n):
        """Wait for the link's share of n bytes: all responses take turns on
        one budget of link_rate bytes/s."""
        with self.server.lock:
            now = time.monotonic()
            self.server.link_free = max(now, self.server.link_free) + n / self.link_rate
            ahead = self.server.link_free - now
        time.sleep(ahead)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward


class TLSServer(ThreadingHTTPServer):
    """The TLS handshake in each connection's own thread, not in accept():
    a client that connects and then says nothing (one killed mid-set-up,
    behind a relay that keeps its side open) must not stop the others."""

    daemon_threads = True

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        request.settimeout(None)
        super().finish_request(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="host:port of the real registry")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--inject-auth", help="USER:PASS sent upstream instead of the client's credentials")
    opts = ap.parse_args()
    srv = TLSServer(("127.0.0.1", opts.port), Handler)
    srv.opts, srv.lock, srv.stats, srv.used, srv.flying = opts, threading.Lock(), {}, {}, {}
    srv.link_free = 0.0
    srv.upctx = ssl.create_default_context(cafile=opts.ca)
    srv.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.ctx.load_cert_chain(opts.cert, opts.key)
    srv.serve_forever()


if __name__ == "__main__":
    main()
