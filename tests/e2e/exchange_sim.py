#!/usr/bin/env python3
"""A Horizon exchange simulator for the tests, as strict as the real one.

The exchange has no Debian package, so the tests carry this.  It follows the
exchange's own code, open-horizon/exchange-api at dfaabdcc (paths below are
under src/main/scala/org/openhorizon/exchangeapi/), and where anax's reading
matters, open-horizon/anax at 2f3fa5a5.  Each behaviour cites what it follows.

- Plain HTTP by default, as the exchange always binds it (ExchangeApiApp.scala:
  default-http-port 8080; HTTPS is added only with a truststore): --tls CERT KEY
  adds TLS instead.
- The node-facing routes under /v1 with the exchange's envelopes, status codes
  and error bodies (ExchangeApiApp.scala myRejectionHandler/myExceptionHandler,
  src/main/resources/messages.txt); no WWW-Authenticate on a 401.
- POST /orgs/{o}/changes as route/organization/Changes.scala answers a node.
- Test-only administration under /_sim/ (no auth): publish, delete, set
  intervals, inject faults.

A second port (--redirect-port) answers everything with a redirect to the main
one, as an ingress in front of a hub would (the exchange itself never
redirects: no redirect directive in any route).
"""
import argparse
import base64
import json
import random
import re
import ssl
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "2.154.0"
# Changes.scala, the node's filter: categories mgmtpolicy, node (its own id),
# service, org.  Category of each resource (table/resourcechange/ResChangeResource.scala,
# ResChangeCategory.scala).
CATEGORY = {"node": "node", "nodemsgs": "node", "nodeagreements": "node", "nodestatus": "node",
            "nodeerrors": "node", "nodepolicies": "node", "services_configstate": "node",
            "nodemgmtpolstatus": "node", "service": "service", "servicekeys": "service",
            "servicedockauths": "service", "servicepolicies": "service", "org": "org",
            "mgmtpolicy": "mgmtpolicy", "pattern": "pattern", "patternkeys": "pattern"}
CONTENTION_S = 2.0  # reference.conf api.resourceChanges.contentionDuration
MAX_RECORDS_CAP = 10000  # api.resourceChanges.maxRecordsCap
ZERO_INTERVALS = {"minInterval": 0, "maxInterval": 0, "intervalAdjustment": 0}  # NodeHeartbeatIntervals(0,0,0)


def stamp():
    # ApiTime.nowUTC: "2019-05-14T16:20:40.221Z[UTC]"
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z[UTC]"


def form_id(org, url, version, arch):
    """table/service/ServicesTQ.scala formId: org/ + url (scheme stripped, $!*,;/?@&~=% -> -) + _version_arch."""
    u = re.sub(r"^[A-Za-z]+://", "", url)
    u = re.sub(r"[$!*,;/?@&~=%]", "-", u)
    return "%s/%s_%s_%s" % (org, u, version, arch)


def api(code, msg):
    """ApiResponse(code, msg), the body of every exchange error."""
    return {"code": code, "msg": msg}


class DB:
    def __init__(self, ttl):
        self.lock = threading.Lock()
        self.orgs, self.nodes, self.patterns, self.services = {}, {}, {}, {}
        self.keys, self.pattern_keys, self.dockauths = {}, {}, {}
        self.changes, self.seq = [], 0  # seq: resourcechanges_changeid_seq last_value
        self.ttl = ttl
        self.fault = {"mode": "none"}
        self.stats = {}
        # Identities the exchange still authenticates after their node row is gone:
        # another instance of an HA hub whose cache holds it (idsTtlSeconds 5400).
        self.ghosts = {}
        self.redirect_host = "127.0.0.1"

    def change(self, org, resource, rid, op, public=False):
        self.seq += 1
        self.changes.append({"changeId": self.seq, "orgId": org, "resource": resource, "id": rid,
                             "category": CATEGORY[resource], "public": public, "operation": op,
                             "lastUpdated": stamp(), "ts": time.time()})

    def prune(self):
        # reference.conf resourceChanges.ttl (4 h), trimmed by the exchange on a timer
        cutoff = time.time() - self.ttl
        self.changes = [c for c in self.changes if c["ts"] >= cutoff]

    def org(self, name):
        return self.orgs.setdefault(name, {"orgType": "", "label": name, "description": "", "lastUpdated": stamp(),
                                           "tags": {}, "limits": {"maxNodes": 0},
                                           "heartbeatIntervals": dict(ZERO_INTERVALS)})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # -- plumbing
    def send(self, code, body, ctype="application/json", headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def count(self, key):
        db = self.server.db
        with db.lock:
            db.stats[key] = db.stats.get(key, 0) + 1

    def authenticate(self):
        """(who, None) for a node, or (None, (status, body)) as ExchangeApiApp answers.

        A wrong token: 401 invalid.credentials (myRejectionHandler, the literal key);
        an identity the exchange does not know (a deleted node): 401 "unauthorized"
        (getResourceIdentityAndPassword's minBy on an empty Seq, myExceptionHandler).
        The exchange splits credentials with ^(.+):(.+)$ (auth/AuthenticationSupport.scala)."""
        h = self.headers.get("Authorization", "")
        bad = (401, api("invalid-credentials", "invalid.credentials"))
        if not h.startswith("Basic "):
            return None, bad
        try:
            creds = base64.b64decode(h[6:]).decode()
        except ValueError:
            return None, bad
        m = re.match(r"^(.+):(.+)$", creds)
        if not m:
            return None, bad
        db = self.server.db
        node = db.nodes.get(m.group(1))
        ghost = db.ghosts.get(m.group(1))
        if node is None and ghost and ghost["until"] > time.time():
            node = ghost
        if node is None:
            return None, (401, api("invalid-credentials", "unauthorized"))
        if node["token"] != m.group(2):
            return None, bad
        return m.group(1), None

    def faulty(self):
        f = self.server.db.fault
        if f["mode"] == "none" or f.get("count", 0) <= 0:
            return False
        if f.get("only") and f["only"] not in self.path:
            return False
        f["count"] -= 1
        if f["mode"] == "status":
            # 502 database-connection-error, 504 database-timeout (myExceptionHandler);
            # 503 text/plain after the request timeout (pekko's)
            st = f.get("status", 502)
            if st == 503:
                self.send(503, b"The server was not able to produce a timely response to your request.",
                          "text/plain; charset=UTF-8")
            else:
                self.send(st, api("database-connection-error" if st != 504 else "database-timeout", "simulated"))
        elif f["mode"] == "hang":
            time.sleep(f.get("seconds", 60))
            self.close_connection = True
        elif f["mode"] == "down":
            self.close_connection = True
            self.connection.close()
        return True

    def redirecting(self):
        """--redirect-port: every request moved to the main port (307 keeps a POST as it is)."""
        if self.server.redirect_to is None:
            return False
        loc = "%s://%s:%d%s" % (self.server.redirect_to[0], self.server.db.redirect_host, self.server.redirect_to[1],
                                self.path)
        self.count("redirect")
        self.send(307, b"", "text/plain", [("Location", loc)])
        return True

    # -- routes
    def do_GET(self):
        if self.redirecting():
            return
        u = urllib.parse.urlparse(self.path)
        if u.path.startswith("/_sim/"):
            return self.admin_get(u.path)
        self.count("GET " + re.sub(r"/orgs/[^/]+(/(\w+))?.*", r"/orgs/*\1", u.path))
        if self.faulty():
            return
        if u.path == "/v1/admin/version":  # route/administration/Version.scala: plain text, no auth
            return self.send(200, VERSION.encode(), "text/plain; charset=UTF-8")
        db = self.server.db
        who, refusal = self.authenticate()
        if who is None:
            return self.send(*refusal)
        org, nid = who.split("/", 1)
        with db.lock:
            if u.path == "/v1/changes/maxchangeid":  # route/organization/MaxChangeId.scala
                return self.send(200, {"maxChangeId": db.seq})
            m = re.fullmatch(r"/v1/orgs/([^/]+)", u.path)
            if m:  # route/organization/Organization.scala getOrganization; READ_MY_ORG for a node
                if m.group(1) != org:
                    return self.send(403, self.denied(who, "READ_OTHER_ORGS", "org=" + m.group(1)))
                return self.send(200, {"orgs": {org: db.org(org)}, "lastIndex": 0})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/nodes/([^/]+)", u.path)
            if m:  # route/node/Node.scala getNode: a node reads only itself
                asked = "%s/%s" % (m.group(1), m.group(2))
                if asked != who:
                    return self.send(403, self.denied(who, "READ_ALL_NODES", "node=" + asked))
                if who not in db.nodes:
                    return self.send(404, api("not-found", "not found"))
                n = dict(db.nodes[who])
                n["token"] = "********"
                return self.send(200, {"nodes": {who: n}, "lastIndex": 0})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/patterns/([^/]+)(/keys(?:/([^/]+))?)?", u.path)
            if m:  # route/deploymentpattern/DeploymentPattern.scala, key/Keys.scala, key/Key.scala
                pid = "%s/%s" % (m.group(1), urllib.parse.unquote(m.group(2)))
                if m.group(3) is None:
                    if pid not in db.patterns:
                        return self.send(404, {"patterns": {}, "lastIndex": 0})
                    return self.send(200, {"patterns": {pid: db.patterns[pid]}, "lastIndex": 0})
                return self.keys(db.pattern_keys.get(pid, {}), m.group(4))
            m = re.fullmatch(r"/v1/orgs/([^/]+)/services", u.path)
            if m:  # route/service/Services.scala getServices: own org, or public ones of the path's org
                q = urllib.parse.parse_qs(u.query)
                found = {}
                for sid, s in db.services.items():
                    if not sid.startswith(m.group(1) + "/") or (m.group(1) != org and not s.get("public")):
                        continue
                    if any(k in q and q[k][0] != "%" and s.get(k) != q[k][0] for k in ("url", "version", "arch")):
                        continue
                    found[sid] = s
                return self.send(200 if found else 404, {"services": found, "lastIndex": 0})
            m = re.fullmatch(r"/v1/orgs/([^/]+)/services/([^/]+)(/keys(?:/([^/]+))?|/dockauths)?", u.path)
            if m:
                sid = "%s/%s" % (m.group(1), urllib.parse.unquote(m.group(2)))
                if m.group(3) is None:  # Service.scala getService
                    if sid not in db.services:
                        return self.send(404, {"services": {}, "lastIndex": 0})
                    return self.send(200, {"services": {sid: db.services[sid]}, "lastIndex": 0})
                if m.group(3) == "/dockauths":  # dockerauth/DockerAuths.scala: 404 [] when none
                    d = db.dockauths.get(sid, [])
                    return self.send(200 if d else 404, d)
                return self.keys(db.keys.get(sid, {}), m.group(4))
        # myRejectionHandler handleNotFound (with valid credentials)
        self.send(404, api("not-found", "unrecognized route"))

    def keys(self, keys, name):
        """key/Keys.scala: a JSON array of names, 404 [] when none; key/Key.scala: the PEM
        as text/plain, 404 with an empty text/plain body when missing."""
        if name is None:
            return self.send(200 if keys else 404, sorted(keys))
        k = urllib.parse.unquote(name)
        if k not in keys:
            return self.send(404, b"", "text/plain; charset=UTF-8")
        return self.send(200, keys[k].encode(), "text/plain; charset=UTF-8")

    @staticmethod
    def denied(who, access, label):
        # messages.txt access.denied.no.auth
        return api("access-denied", "Access denied: '%s' does not have authorization: %s %s" % (who, access, label))

    def do_POST(self):
        if self.redirecting():
            return
        u = urllib.parse.urlparse(self.path)
        if u.path.startswith("/_sim/"):
            return self.admin_post(u.path, self.body())
        self.count("POST " + re.sub(r"/orgs/[^/]+/(\w+).*", r"/orgs/*/\1", u.path))
        body = self.body()
        if self.faulty():
            return
        db = self.server.db
        who, refusal = self.authenticate()
        if who is None:
            return self.send(*refusal)
        m = re.fullmatch(r"/v1/orgs/([^/]+)/changes", u.path)
        if not m:
            return self.send(404, api("not-found", "unrecognized route"))
        org, nid = who.split("/", 1)
        if m.group(1) != org:
            return self.send(403, self.denied(who, "READ_OTHER_ORGS", "org=" + m.group(1)))
        with db.lock:
            # the heartbeat, in the same transaction; a node row that is gone
            # (an identity still cached) fails it: IllegalCallerException -> 404
            if who not in db.nodes:
                return self.send(404, api("not-found", "Node or agbot '%s' not found" % who))
            db.nodes[who]["lastHeartbeat"] = stamp()
            db.nodes[who]["heartbeats"] = db.nodes[who].get("heartbeats", 0) + 1
            db.prune()
            req = int(body.get("changeId", 0))
            limit = min(int(body.get("maxRecords", 1000)), MAX_RECORDS_CAP)
            # the contention window: when a row with exactly the requested id
            # still exists, rows updated within 2 s before it come again
            at = [c for c in db.changes if c["changeId"] == req]
            since = at[0]["ts"] - CONTENTION_S if at else None
            rows = [c for c in db.changes
                    if (req <= 0 or c["changeId"] >= req or (since is not None and c["ts"] >= since))
                    and (c["orgId"] == org or c["public"])
                    and (c["category"] in ("mgmtpolicy", "service", "org")
                         or (c["category"] == "node" and c["id"] == nid))]
            rows = sorted(rows, key=lambda c: c["changeId"])[:limit]
            hit = len(rows) == limit  # hitMaxRecords = (result.sizeIs == maxRecords)
            recent = rows[-1]["changeId"] if hit else db.seq
            # grouped by orgId_id_resource in a mutable.Map: values come in no order;
            # each entry's resourceChanges ascending, its operation the latest
            groups = {}
            for c in rows:
                g = groups.setdefault("%s_%s_%s" % (c["orgId"], c["id"], c["resource"]),
                                      {"orgId": c["orgId"], "resource": c["resource"], "id": c["id"],
                                       "operation": c["operation"], "resourceChanges": []})
                g["operation"] = c["operation"]
                g["resourceChanges"].append({"changeId": c["changeId"], "lastUpdated": c["lastUpdated"]})
            out = list(groups.values())
            random.shuffle(out)
            return self.send(201, {"changes": out, "mostRecentChangeId": recent, "hitMaxRecords": hit,
                                   "exchangeVersion": VERSION})

    # -- test-only administration
    def admin_get(self, path):
        db = self.server.db
        with db.lock:
            if path == "/_sim/stats":
                return self.send(200, db.stats)
            if path == "/_sim/nodes":
                return self.send(200, {k: {"lastHeartbeat": v.get("lastHeartbeat"),
                                           "heartbeats": v.get("heartbeats", 0)} for k, v in db.nodes.items()})
        self.send(404, {})

    def admin_post(self, path, b):
        db = self.server.db
        with db.lock:
            if path == "/_sim/node":
                nid = "%s/%s" % (b["org"], b["id"])
                db.org(b["org"])
                node = db.nodes.get(nid, {"name": b["id"], "owner": b["org"] + "/admin", "nodeType": "device",
                                          "registeredServices": [], "userInput": [], "msgEndPoint": "",
                                          "softwareVersions": {}, "publicKey": "", "lastHeartbeat": None,
                                          "heartbeatIntervals": dict(ZERO_INTERVALS)})
                node.update({"token": b["token"], "pattern": b.get("pattern", ""), "arch": b.get("arch", ""),
                             "lastUpdated": stamp()})
                if "heartbeatIntervals" in b:
                    node["heartbeatIntervals"] = b["heartbeatIntervals"]
                db.nodes[nid] = node
                db.change(b["org"], "node", b["id"], "modified")
                return self.send(201, {"id": nid})
            if path == "/_sim/node/delete":
                # route/node/Node.scala deleteNode; with ha_seconds the identity stays cached that long
                nid = "%s/%s" % (b["org"], b["id"])
                node = db.nodes.pop(nid)
                if b.get("ha_seconds"):
                    db.ghosts[nid] = {"token": node["token"], "until": time.time() + float(b["ha_seconds"])}
                db.change(b["org"], "node", b["id"], "deleted")
                return self.send(201, {})
            if path == "/_sim/org":
                o = db.org(b["org"])
                if "heartbeatIntervals" in b:
                    o["heartbeatIntervals"] = b["heartbeatIntervals"]
                o["lastUpdated"] = stamp()
                db.change(b["org"], "org", b["org"], "modified")
                return self.send(201, {})
            if path == "/_sim/pattern":
                pid = "%s/%s" % (b["org"], b["name"])
                p = dict(b["pattern"])
                p.setdefault("owner", b["org"] + "/admin")
                p.setdefault("label", b["name"])
                p.setdefault("public", False)
                p["lastUpdated"] = stamp()
                db.patterns[pid] = p
                db.change(b["org"], "pattern", b["name"], "created")  # category pattern: nodes never see it
                return self.send(201, {"id": pid})
            if path == "/_sim/pattern/delete":
                db.patterns.pop("%s/%s" % (b["org"], b["name"]))
                db.change(b["org"], "pattern", b["name"], "deleted")
                return self.send(201, {})
            if path == "/_sim/patternkey":
                db.pattern_keys.setdefault(b["pattern_id"], {})[b["name"]] = b["pem"]
                db.change(b["pattern_id"].split("/")[0], "patternkeys", b["pattern_id"].split("/", 1)[1], "created")
                return self.send(201, {})
            if path == "/_sim/service":
                s = dict(b["service"])
                sid = form_id(b["org"], s["url"], s["version"], s["arch"])
                s.setdefault("owner", b["org"] + "/admin")
                s["lastUpdated"] = stamp()
                op = "modified" if sid in db.services else "created"
                db.services[sid] = s
                db.change(b["org"], "service", sid.split("/", 1)[1], op, s.get("public", False))
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
                    # PostPutServiceDockAuthRequest: a missing username is stored as "token"
                    lst.append({"dockAuthId": len(lst) + 1, "registry": b["registry"],
                                "username": b.get("username") or "token", "token": b["token"],
                                "lastUpdated": stamp()})
                db.change(b["service_id"].split("/")[0], "servicedockauths", b["service_id"].split("/", 1)[1],
                          "modified")
                return self.send(201, {})
            if path == "/_sim/change":  # a record of any resource, e.g. another org's service
                db.change(b["org"], b["resource"], b["id"], b.get("operation", "modified"), b.get("public", False))
                return self.send(201, {})
            if path == "/_sim/fault":
                db.fault = b
                return self.send(201, {})
            if path == "/_sim/ttl":
                db.ttl = float(b["seconds"])
                return self.send(201, {})
            if path == "/_sim/redirect":
                db.redirect_host = b["host"]
                return self.send(201, {})
        self.send(404, {})


def serve(srv):
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="HTTPS instead of the default plain HTTP")
    ap.add_argument("--redirect-port", type=int, help="a port that redirects every request to --port")
    ap.add_argument("--redirect-tls", nargs=2, metavar=("CERT", "KEY"), help="the redirecting port speaks HTTPS")
    ap.add_argument("--ttl", type=float, default=14400, help="seconds change records are kept")
    a = ap.parse_args()
    db = DB(a.ttl)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.db = db
    srv.redirect_to = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if a.redirect_port:
        r = ThreadingHTTPServer(("127.0.0.1", a.redirect_port), Handler)
        r.daemon_threads = True
        r.db = db
        r.redirect_to = ("https" if a.tls else "http", a.port)
        if a.redirect_tls:
            rctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            rctx.load_cert_chain(a.redirect_tls[0], a.redirect_tls[1])
            r.socket = rctx.wrap_socket(r.socket, server_side=True)
        threading.Thread(target=serve, args=(r,), daemon=True).start()
    serve(srv)


if __name__ == "__main__":
    main()
