#!/usr/bin/env python3
"""Publish to the exchange simulator the way `hzn exchange service publish` does:
image tags rewritten to digests (skopeo inspect), the deployment serialised as
Go's json.Marshal writes it, signed RSA-PSS/SHA-256 with the maximum salt by
the openssl CLI, the signature in standard base64.

  hzn_publish.py service --sim URL --ca CA --org ORG --url URL --version V --arch A \\
      --image REF [--image REF] --key PRIVATE.pem [--requires ORG/URL/RANGE ...] \\
      [--dont-change-image-tag] [--creds U:P] [--cert-dir DIR] [--bad-signature]
  hzn_publish.py pattern --sim URL --ca CA --org ORG --name P --service ORG/URL/VERSION/ARCH ...
      [--override CONTAINER=IMAGE --key PRIVATE.pem]   (deployment_overrides, signed)
  hzn_publish.py node --sim URL --ca CA --org ORG --id ID --token T [--pattern ORG/P] [--arch A]
      [--intervals MIN,MAX,ADJUST]
  hzn_publish.py patternkey --sim URL --ca CA --pattern-id ORG/P --name N --pem FILE
  hzn_publish.py dockauth --sim URL --ca CA --service-id ID --registry R [--username U] --token T
"""
import argparse
import base64
import hashlib
import json
import ssl
import subprocess
import sys
import urllib.request


def go_json(obj):
    """json.Marshal: compact, keys sorted, <>& escaped."""
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def sign(key, data):
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-sigopt", "rsa_padding_mode:pss",
                          "-sigopt", "rsa_pss_saltlen:max", "-sigopt", "rsa_mgf1_md:sha256"],
                         input=data.encode(), capture_output=True, check=True).stdout
    return base64.b64encode(out).decode()


def pin(ref, creds, cert_dir):
    """domain/path:tag -> domain/path@sha256:... (the tag is dropped, as hzn does)."""
    if "@" in ref:
        return ref
    args = ["skopeo", "inspect", "--raw"]
    if creds:
        args += ["--creds", creds]
    if cert_dir:
        args += ["--cert-dir", cert_dir]
    raw = subprocess.run(args + ["docker://" + ref], capture_output=True, check=True).stdout
    name = ref.rsplit(":", 1)[0] if ref.rfind(":") > ref.rfind("/") else ref
    return "%s@sha256:%s" % (name, hashlib.sha256(raw).hexdigest())


def post(a, path, body):
    ctx = ssl.create_default_context(cafile=a.ca) if a.sim.startswith("https:") else None
    req = urllib.request.Request(a.sim.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["service", "pattern", "node", "dockauth", "servicekey", "patternkey"])
    ap.add_argument("--sim", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--org")
    ap.add_argument("--url")
    ap.add_argument("--version")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--key")
    ap.add_argument("--requires", action="append", default=[])
    ap.add_argument("--dont-change-image-tag", "-I", action="store_true")
    ap.add_argument("--creds")
    ap.add_argument("--cert-dir")
    ap.add_argument("--bad-signature", action="store_true", help="flip a byte of the signed text after signing")
    ap.add_argument("--name")
    ap.add_argument("--service", action="append", default=[])
    ap.add_argument("--id")
    ap.add_argument("--token")
    ap.add_argument("--pattern", default="")
    ap.add_argument("--service-id")
    ap.add_argument("--registry")
    ap.add_argument("--username", default="")
    ap.add_argument("--pem")
    ap.add_argument("--pattern-id")
    ap.add_argument("--override", action="append", default=[], help="CONTAINER=IMAGE in deployment_overrides")
    ap.add_argument("--intervals", help="the node's heartbeatIntervals MIN,MAX,ADJUST")
    ap.add_argument("--requires-version", action="append", default=[],
                    help="ORG/URL/VERSION/RANGE: a requiredServices entry with both version and versionRange")
    a = ap.parse_args()

    if a.what == "service":
        images = [i if a.dont_change_image_tag else pin(i, a.creds, a.cert_dir) for i in a.image]
        containers = {}
        for i in images:
            name = i.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
            containers[name] = {"image": i}
        dep = go_json({"services": containers})
        sig = sign(a.key, dep)
        if a.bad_signature:
            dep = dep.replace('"image"', '"Image"', 1)
        reqs = []
        for r in a.requires:
            org, rest = r.split("/", 1)
            url, rng = rest.rsplit("/", 1)
            reqs.append({"org": org, "url": url, "versionRange": rng, "arch": a.arch})
        for r in a.requires_version:
            org, rest = r.split("/", 1)
            url, ver, rng = rest.rsplit("/", 2)
            reqs.append({"org": org, "url": url, "version": ver, "versionRange": rng, "arch": a.arch})
        svc = {"label": a.url, "description": "", "public": False, "url": a.url, "version": a.version,
               "arch": a.arch, "sharable": "multiple", "matchHardware": {}, "requiredServices": reqs,
               "userInput": [], "deployment": dep, "deploymentSignature": sig, "imageStore": {}}
        print(post(a, "/_sim/service", {"org": a.org, "service": svc})["id"])
    elif a.what == "pattern":
        services = []
        for s in a.service:
            org, rest = s.split("/", 1)
            url, version, arch = rest.rsplit("/", 2)
            sv = {"version": version, "priority": {}, "upgradePolicy": {}}
            if a.override:
                over = {"services": {c.split("=", 1)[0]: {"image": c.split("=", 1)[1], "environment": ["OVERRIDDEN=1"]}
                                     for c in a.override}}
                sv["deployment_overrides"] = go_json(over)
                sv["deployment_overrides_signature"] = sign(a.key, sv["deployment_overrides"])
            services.append({"serviceUrl": url, "serviceOrgid": org, "serviceArch": arch, "agreementLess": True,
                             "serviceVersions": [sv], "dataVerification": {}, "nodeHealth": {}})
        pat = {"description": "", "services": services, "userInput": [], "secretBinding": [],
               "agreementProtocols": [{"name": "Basic"}]}
        print(post(a, "/_sim/pattern", {"org": a.org, "name": a.name, "pattern": pat})["id"])
    elif a.what == "node":
        node = {"org": a.org, "id": a.id, "token": a.token, "pattern": a.pattern, "arch": a.arch}
        if a.intervals:
            mn, mx, adj = (int(x) for x in a.intervals.split(","))
            node["heartbeatIntervals"] = {"minInterval": mn, "maxInterval": mx, "intervalAdjustment": adj}
        print(post(a, "/_sim/node", node)["id"])
    elif a.what == "dockauth":
        post(a, "/_sim/dockauth", {"service_id": a.service_id, "registry": a.registry, "username": a.username,
                                   "token": a.token})
    elif a.what == "patternkey":
        post(a, "/_sim/patternkey", {"pattern_id": a.pattern_id, "name": a.name, "pem": open(a.pem).read()})
    elif a.what == "servicekey":
        post(a, "/_sim/servicekey", {"service_id": a.service_id, "name": a.name, "pem": open(a.pem).read()})


if __name__ == "__main__":
    sys.exit(main())
