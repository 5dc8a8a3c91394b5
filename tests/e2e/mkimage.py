#!/usr/bin/env python3
"""Build OCI image layouts for the tests, without a network or a daemon.

  mkimage.py image OUT --tag T [--busybox] [--random-mb N ...] [--random-kb N ...] [--platform OS/ARCH[/V]] [--note TEXT]
      [--cmd JSON-ARRAY] [--files COUNT:KIB [--vary I,J]]
  mkimage.py index OUT --tag T --platform linux/amd64 --platform linux/arm64/v8 ...

Layers are gzip'd tars (level 1); configs carry the right diff_ids, so
runtimes accept the images. The layout is then pushed with skopeo.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class HashWriter:
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def put_blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def make_layer(out, fill):
    """fill(tar) adds members; returns (descriptor, diff_id)."""
    tmp = os.path.join(out, "blobs", "sha256", ".tmp")
    with open(tmp, "wb") as raw:
        gz_hash = HashWriter(raw)
        with gzip.GzipFile(fileobj=gz_hash, mode="wb", compresslevel=1, mtime=0) as gz:
            tar_hash = HashWriter(gz)
            with tarfile.open(fileobj=tar_hash, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                fill(tar)
    d = gz_hash.h.hexdigest()
    os.rename(tmp, os.path.join(out, "blobs", "sha256", d))
    return {"mediaType": OCI_LAYER, "digest": "sha256:" + d, "size": gz_hash.n}, "sha256:" + tar_hash.h.hexdigest()


def add_file(tar, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 0
    tar.addfile(ti, io.BytesIO(data))


def add_busybox(tar):
    for d in ("bin", "etc", "tmp"):
        ti = tarfile.TarInfo(d)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(ti)
    bb = open("/bin/busybox", "rb").read()
    add_file(tar, "bin/busybox", bb, 0o755)
    for link in ("sh", "echo", "cat", "ls", "true"):
        ti = tarfile.TarInfo("bin/" + link)
        ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
        tar.addfile(ti)


def add_random(tar, name, nbytes, seed):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = nbytes, 0o644, 0

    class Rand(io.RawIOBase):
        def __init__(self):
            self.left, self.h = nbytes, hashlib.sha256(seed.encode())

        def readable(self):
            return True

        def readinto(self, b):
            # Deterministic, incompressible bytes: a SHA-256 counter stream
            # would be slow; os.urandom is fast and the digest is recorded anyway.
            n = min(len(b), self.left)
            b[:n] = os.urandom(n)
            self.left -= n
            return n

    tar.addfile(ti, io.BufferedReader(Rand(), 1 << 20))


def add_files(tar, count, kib, vary, seed):
    """count files of kib KiB each, deterministic (the same in v1 and v2),
    but for those numbered in vary, whose bytes depend on seed."""
    for i in range(count):
        key = ("%s-%d" % (seed, i)) if i in vary else ("file-%d" % i)
        add_file(tar, "data/file-%02d.bin" % i, hashlib.shake_256(key.encode()).digest(kib * 1024))


def build_image(out, platform, busybox, random_sizes, note, bad_diff_id=False, cmd=None, files=None):
    os_, arch, *rest = platform.split("/")
    variant = rest[0] if rest else None
    layers, diff_ids = [], []

    def base(tar):
        if busybox:
            add_busybox(tar)
        add_file(tar, "etc/edgefetch-note", (note or platform).encode() + b"\n")

    fills = [base] + [(lambda n, i: (lambda tar: add_random(tar, "data/random-%d.bin" % i, n, note or "")))(n, i)
                      for i, n in enumerate(random_sizes)]
    if files:
        count, kib, vary = files
        fills.append(lambda tar: add_files(tar, count, kib, vary, note or ""))
    for fill in fills:
        desc, diff = make_layer(out, fill)
        layers.append(desc)
        diff_ids.append(diff)
    if bad_diff_id:  # a config that lies about its layers: runtimes must refuse it
        diff_ids[-1] = "sha256:" + "0" * 64
    config = {"architecture": arch, "os": os_, "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "mkimage.py"} for _ in layers]}
    if variant:
        config["variant"] = variant
    cdesc = put_blob(out, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": dict(mediaType=OCI_CONFIG, **cdesc), "layers": layers}
    mdesc = put_blob(out, json.dumps(manifest, sort_keys=True).encode())
    plat = {"architecture": arch, "os": os_}
    if variant:
        plat["variant"] = variant
    return dict(mediaType=OCI_MANIFEST, platform=plat, **mdesc)


def new_layout(out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


def write_index(out, tag, desc):
    desc = dict(desc)
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [desc]}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["image", "index"])
    ap.add_argument("out")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--platform", action="append", default=[])
    ap.add_argument("--busybox", action="store_true")
    ap.add_argument("--random-mb", type=int, action="append", default=[], help="one more layer of N MiB")
    ap.add_argument("--random-kb", type=int, action="append", default=[], help="one more layer of N KiB")
    ap.add_argument("--note")
    ap.add_argument("--bad-diff-id", action="store_true", help="a config whose diff_ids do not match its layers")
    ap.add_argument("--cmd", type=json.loads, help="the config's Cmd, a JSON array")
    ap.add_argument("--files", help="COUNT:KIB: one more layer of COUNT files of KIB KiB, the same in every image")
    ap.add_argument("--vary", default="", help="I,J,...: those files of --files depend on --note")
    a = ap.parse_args()
    new_layout(a.out)
    if a.kind == "image":
        sizes = [mb << 20 for mb in a.random_mb] + [kb << 10 for kb in a.random_kb]
        files = None
        if a.files:
            count, kib = (int(x) for x in a.files.split(":"))
            files = (count, kib, {int(x) for x in a.vary.split(",") if x})
        desc = build_image(a.out, (a.platform or ["linux/amd64"])[0], a.busybox, sizes, a.note, a.bad_diff_id, a.cmd,
                           files)
        desc.pop("platform")
    else:
        entries = [build_image(a.out, p, a.busybox, [], (a.note or "") + p, cmd=a.cmd) for p in a.platform]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        desc = dict(mediaType=OCI_INDEX, **put_blob(a.out, json.dumps(index, sort_keys=True).encode()))
    write_index(a.out, a.tag, desc)
    print(desc["digest"])


if __name__ == "__main__":
    main()
