#!/usr/bin/env python3
"""A Horizon exchange simulator for the tests, written from shared/docs/horizon.md.

The exchange has no package, so the tests carry this: the node-facing routes
under /v1 with the exchange's envelopes and status codes (404 for absent,
201 for changes, node Basic auth "org/nodeid:token"), change records for
nodes, services, service keys and dockauths but not for pattern contents
(nodes are never told of those), pruned after --ttl seconds as the real
exchange prunes them after 4 h.

Test-only admin routes under /_sim/ (no auth) publish data and inject faults.
"""
import argparse
import base64
import json
import re
import ssl
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "2.154.0"
NODE_VISIBLE = {"node", "service", "servicekeys", "servicedockauths", "servicepolicies", "org", "mgmtpolicy"}


def stamp():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ[UTC]")


def form_id(org, url, version, arch):
    """exch ServicesTQ.formId: org/ + url (scheme stripped, $!*,;/?@&~=% -> -) + _version_arch."""
    u = re.sub(r"^[A-Za-z]+://", "", url)
    u = re.sub(r"[$!*,;/?@&~=%]", "-", u)
    return "%s/%s_%s_%s" % (org, u, version, arch)


class DB:
    def __init__(self, ttl):
        self.lock = threading.Lock()
        self.nodes, self.patterns, self.services = {}, {}, {}
        self.keys, self.dockauths = {}, {}
        self.changes, self.next_change = [], 1
        self.ttl = ttl
        self.fault = {"mode": "none"}
        self.stats = {}

    def change(self, org, resource, rid, op):
        now = time.time()
        self.changes.append({"changeId": self.next_change, "orgId": org, "resource": resource, "id": rid,
                             "operation": op, "lastUpdated": stamp(), "ts": now})
        self.next_change += 1

    def prune(self):
        cutoff = time.time() - self.ttl
        self.changes = [c for c in self.changes if c["ts"] >= cutoff]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # -- plumbing
    def send(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def count(self, key):
        db = self.server.db
        with db.lock:
            db.stats[key] = db.stats.get(key, 0) + 1

    def node_auth(self):
        """The node this request authenticates as, or None."""
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return None
        try:
            creds = base64.b64decode(h[6:]).decode()
        except ValueError:
            return None
        m = re.match(r"^(.+):(.+)$", creds)  # as the exchange splits it
        if not m:
            return None
        node = self.server.db.nodes.get(m.group(1))
        return m.group(1) if node and node["token"] == m.group(2) else None

    def faulty(self):
        f = self.server.db.fault
        if f["mode"] == "none" or f.get("count", 0) <= 0:
            return False
        f["count"] -= 1
        if f["mode"] == "status":
            self.send(f.get("status", 500), {"code": "internal error", "msg": "simulated failure"})
        elif f["mode"] == "hang":
            time.sleep(f.get("seconds", 60))
            self.close_connection = True
        elif f["mode"] == "down":
            self.close_connection = True
            self.connection.close()
        return True

    # -- routes
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path.startswith("/_sim/"):
            return self.admin_get(u.path)
        self.count("GET " + re.sub(r"/orgs/[^/]+/(\w+).*", r"/orgs/*/\1", u.path))
        if self.faulty():
            return
        if u.path == "/v1/admin/version":
            return self.send(200, VERSION.encode(), "text/plain")
        db = self.server.db
        who = self.node_auth()
        if who is None:
            return self.send(401, {"code": "invalid credentials", "msg": "invalid credentials"})
        with db.lock:
            if u.path == "/v1/changes/maxchangeid":
                return self.send(200, {"maxChangeId": db.next_change - 1})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/nodes/([^/]+)", u.path)
            if m:
                nid = "%s/%s" % (m.group(1), m.group(2))
                if nid != who:
                    return self.send(403, {"code": "access denied", "msg": "access denied"})
                n = dict(db.nodes[nid])
                n.pop("token")
                n["token"] = "********"
                return self.send(200, {"nodes": {nid: n}, "lastIndex": 0})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/patterns/([^/]+)", u.path)
            if m:
                pid = "%s/%s" % (m.group(1), m.group(2))
                if pid not in db.patterns:
                    return self.send(404, {"patterns": {}, "lastIndex": 0})
                return self.send(200, {"patterns": {pid: db.patterns[pid]}, "lastIndex": 0})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/services", u.path)
            if m:
                q = urllib.parse.parse_qs(u.query)
                found = {}
                for sid, s in db.services.items():
                    if not sid.startswith(m.group(1) + "/"):
                        continue
                    if any(k in q and q[k][0] != "%" and s.get(k) != q[k][0] for k in ("url", "version", "arch")):
                        continue
                    found[sid] = s
                return self.send(200 if found else 404, {"services": found, "lastIndex": 0})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/services/([^/]+)(/keys(?:/([^/]+))?|/dockauths)?", u.path)
            if m:
                sid = "%s/%s" % (m.group(1), urllib.parse.unquote(m.group(2)))
                if sid not in db.services:
                    return self.send(404, {"services": {}, "lastIndex": 0})
                if m.group(3) is None:
                    return self.send(200, {"services": {sid: db.services[sid]}, "lastIndex": 0})
                if m.group(3) == "/dockauths":
                    d = db.dockauths.get(sid, [])
                    return self.send(200 if d else 404, d)
                keys = db.keys.get(sid, {})
                if m.group(4) is None:
                    return self.send(200 if keys else 404, sorted(keys))
                k = urllib.parse.unquote(m.group(4))
                if k not in keys:
                    return self.send(404, {"code": "not found", "msg": "key not found"})
                return self.send(200, keys[k].encode(), "text/plain")
        self.send(404, {"code": "not found", "msg": "no such route"})

    def do_POST(self):
        u = urllib.parse.urlparse(self.path)
        if u.path.startswith("/_sim/"):
            return self.admin_post(u.path, self.body())
        self.count("POST " + re.sub(r"/orgs/[^/]+/(\w+).*", r"/orgs/*/\1", u.path))
        body = self.body()
        if self.faulty():
            return
        db = self.server.db
        who = self.node_auth()
        if who is None:
            return self.send(401, {"code": "invalid credentials", "msg": "invalid credentials"})
        m = re.fullmatch(r"/v1/orgs/([^/]+)/changes", u.path)
        if not m:
            return self.send(404, {"code": "not found", "msg": "no such route"})
        with db.lock:
            if who not in db.nodes:
                return self.send(404, {"code": "not found", "msg": "node not found"})
            db.nodes[who]["lastHeartbeat"] = stamp()  # the changes call is the heartbeat
            db.prune()
            org, nid = who.split("/", 1)
            since = int(body.get("changeId", 0))
            limit = min(int(body.get("maxRecords", 1000)), 10000)
            visible = [c for c in db.changes if c["changeId"] >= since and c["resource"] in NODE_VISIBLE
                       and c["orgId"] == org and (c["resource"] != "node" or c["id"] == nid)]
            hit = len(visible) > limit
            visible = visible[:limit]
            out = [{"orgId": c["orgId"], "resource": c["resource"], "id": c["id"], "operation": c["operation"],
                    "resourceChanges": [{"changeId": c["changeId"], "lastUpdated": c["lastUpdated"]}]}
                   for c in visible]
            recent = visible[-1]["changeId"] if hit else db.next_change - 1
            return self.send(201, {"changes": out, "mostRecentChangeId": recent, "hitMaxRecords": hit,
                                   "exchangeVersion": VERSION})

    # -- test-only administration
    def admin_get(self, path):
        db = self.server.db
        with db.lock:
            if path == "/_sim/stats":
                return self.send(200, db.stats)
            if path == "/_sim/nodes":
                return self.send(200, {k: {"lastHeartbeat": v.get("lastHeartbeat")} for k, v in db.nodes.items()})
        self.send(404, {})

    def admin_post(self, path, b):
        db = self.server.db
        with db.lock:
            if path == "/_sim/node":
                nid = "%s/%s" % (b["org"], b["id"])
                node = db.nodes.get(nid, {"name": b["id"], "owner": b["org"] + "/admin", "nodeType": "device",
                                          "registeredServices": [], "userInput": [], "msgEndPoint": "",
                                          "softwareVersions": {}, "publicKey": "", "heartbeatIntervals":
                                          {"minInterval": 0, "maxInterval": 0, "intervalAdjustment": 0}})
                node.update({"token": b["token"], "pattern": b.get("pattern", ""), "arch": b.get("arch", ""),
                             "lastUpdated": stamp()})
                db.nodes[nid] = node
                db.change(b["org"], "node", b["id"], "modified")
                return self.send(201, {"id": nid})
            if path == "/_sim/pattern":
                pid = "%s/%s" % (b["org"], b["name"])
                p = dict(b["pattern"])
                p.setdefault("owner", b["org"] + "/admin")
                p.setdefault("label", b["name"])
                p.setdefault("public", False)
                p["lastUpdated"] = stamp()
                db.patterns[pid] = p
                db.change(b["org"], "pattern", b["name"], "modified")  # never shown to nodes
                return self.send(201, {"id": pid})
            if path == "/_sim/service":
                s = dict(b["service"])
                sid = form_id(b["org"], s["url"], s["version"], s["arch"])
                s.setdefault("owner", b["org"] + "/admin")
                s["lastUpdated"] = stamp()
                op = "modified" if sid in db.services else "created"
                db.services[sid] = s
                db.change(b["org"], "service", sid.split("/", 1)[1], op)
                return self.send(201, {"id": sid})
            if path == "/_sim/servicekey":
                db.keys.setdefault(b["service_id"], {})[b["name"]] = b["pem"]
                db.change(b["service_id"].split("/")[0], "servicekeys", b["service_id"].split("/", 1)[1], "created")
                return self.send(201, {})
            if path == "/_sim/dockauth":
                lst = db.dockauths.setdefault(b["service_id"], [])
                if b.get("clear"):
                    lst.clear()
                else:
                    lst.append({"dockAuthId": len(lst) + 1, "registry": b["registry"],
                                "username": b.get("username") or "token", "token": b["token"],
                                "lastUpdated": stamp()})
                db.change(b["service_id"].split("/")[0], "servicedockauths", b["service_id"].split("/", 1)[1],
                          "modified")
                return self.send(201, {})
            if path == "/_sim/fault":
                db.fault = b
                return self.send(201, {})
            if path == "/_sim/ttl":
                db.ttl = float(b["seconds"])
                return self.send(201, {})
        self.send(404, {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ttl", type=float, default=14400, help="seconds change records are kept")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.db = DB(a.ttl)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
