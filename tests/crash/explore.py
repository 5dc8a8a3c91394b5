#!/usr/bin/env python3
"""The crash-state explorer: what a power cut can leave of a run, and
whether the next run recovers from it (after ALICE, OSDI '14).

    explore.py --name NAME --root DIR --cmd CMD [--rerun CMD] [--gc CMD]
               [--report FILE] [--keep-failures DIR]

1. DIR is read as it is (the state before the run: all of it durable).
2. CMD (a shell command) runs once with fsrec.so preloaded ($FSREC_SO),
   which records every file-system operation under DIR, with the bytes
   written, in the order they happened.
3. At every crash point (before the first operation, after each), the
   states the weak persistence model allows are built: POSIX with atomic
   rename, where only an fsync forces anything.  A write, truncate or
   fallocate is durable once its file is fsynced (or fdatasynced); a
   name made, removed or moved in a directory once that directory is;
   what is under a directory that is not itself durable in its parent is
   gone.  The states at each point: everything persisted; only what the
   fsyncs forced; and, for each operation not yet forced, everything but
   that one (a lost write that had made the file longer leaves the new
   length, with zeros where its bytes were).
4. Each distinct state is written to DIR and checked as the cut left it
   (check_tree below: every blob's bytes match its name; every durable
   record names only what is there; with --lazy-records, a store's record
   needs its manifest there, not yet its blobs), then the rerun command (CMD by
   default) runs on it and must exit 0 with DIR checked again and holding
   what the recorded run ended with; then the gc command runs, and the
   temporary files, partial downloads and handoff directories left are
   counted.

The report (JSON, and one table row on stdout): crash points, states,
distinct states, wrong as cut, not recovered by one re-run, recoveries
that exited 5, leftovers after re-run + gc.  It exits 2 when the run
recorded nothing: an explorer that explored nothing must not pass."""
import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys

HEX64 = re.compile(r"^[0-9a-f]{64}$")
LEFTOVER = re.compile(r"(\.tmp$|\.part$|\.ranges$|^handoff-|\.journal$|\.rebuild$)")


# --- the file-system model ---------------------------------------------------------------------

class State:
    """Names (path -> ('f', inode) | ('d',) | ('l', target)) and inode contents."""

    def __init__(self, names=None, inodes=None):
        self.names = dict(names or {})
        self.inodes = {k: bytearray(v) for k, v in (inodes or {}).items()}

    def copy(self):
        return State(self.names, self.inodes)


def parent(p):
    return os.path.dirname(p)


def snapshot(root):
    """The tree under root as a State (hard links share an inode)."""
    st = State()
    seen = {}
    st.names[root] = ("d",)
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            s = os.lstat(p)
            if stat.S_ISDIR(s.st_mode):
                st.names[p] = ("d",)
            elif stat.S_ISLNK(s.st_mode):
                st.names[p] = ("l", os.readlink(p))
            elif stat.S_ISREG(s.st_mode):
                key = (s.st_dev, s.st_ino)
                if key not in seen:
                    seen[key] = "b%d" % len(seen)
                    with open(p, "rb") as f:
                        st.inodes[seen[key]] = bytearray(f.read())
                st.names[p] = ("f", seen[key])
    return st


def load_log(path):
    ops = []
    data = open(path + ".data", "rb").read() if os.path.exists(path + ".data") else b""
    with open(path) as f:
        for line in f:
            op = json.loads(line)
            if "data" in op:
                op["bytes"] = data[op["data"]:op["data"] + op["len"]]
            ops.append(op)
    return ops


def resolve(base, ops):
    """Walk the recorded run once, everything applied, to learn which inode
    each operation touched; the states are built from that."""
    names = dict(base.names)
    for i, op in enumerate(ops):
        k, p = op["op"], op["path"]
        if k == "creat":
            op["ino"] = "n%d" % i
            names[p] = ("f", op["ino"])
        elif k in ("write", "trunc", "extend", "fsync", "fdatasync"):
            e = names.get(p)
            op["ino"] = e[1] if e and e[0] == "f" else None
            op["dir"] = e is not None and e[0] == "d"
        elif k == "rename":
            q = op["path2"]
            e = names.get(p)
            op["ent"] = e
            moved = {n: v for n, v in names.items() if n == p or n.startswith(p + "/")}
            for n in moved:
                del names[n]
            for n, v in moved.items():
                names[q + n[len(p):]] = v
        elif k == "link":
            op["ent"] = names.get(p)
            names[op["path2"]] = op["ent"]
        elif k == "symlink":
            names[p] = ("l", op["path2"])
        elif k == "mkdir":
            names[p] = ("d",)
        elif k in ("unlink", "rmdir"):
            names.pop(p, None)
        elif k == "sync":
            pass
        else:
            raise SystemExit("explore: the run made an operation the model has no rule for: %s" % k)
    return ops


def forced_by(ops, k):
    """The operations among ops[:k] that the fsyncs among them force."""
    forced = set()
    for j in range(k):
        f = ops[j]
        if f["op"] == "sync":
            forced.update(range(j))
        elif f["op"] in ("fsync", "fdatasync"):
            for i in range(j):
                o = ops[i]
                if f.get("ino") and o["op"] in ("write", "trunc", "extend") and o.get("ino") == f["ino"]:
                    forced.add(i)
                elif f.get("dir") and o["op"] in ("creat", "mkdir", "rmdir", "unlink", "link", "symlink", "rename"):
                    target = o["path2"] if o["op"] in ("rename", "link") else o["path"]
                    if parent(target) == f["path"]:
                        forced.add(i)
        if f["op"] in ("fsync", "fdatasync", "sync"):
            forced.add(j)  # no change of its own
    return forced


def apply(st, op, zero=False):
    k, p = op["op"], op["path"]
    if k == "creat":
        st.names[p] = ("f", op["ino"])
        st.inodes.setdefault(op["ino"], bytearray())
    elif k in ("write", "trunc", "extend"):
        ino = op.get("ino")
        if ino is None:
            return
        b = st.inodes.setdefault(ino, bytearray())
        if k == "write":
            end = op["off"] + op["len"]
            if len(b) < end:
                b.extend(b"\0" * (end - len(b)))
            if not zero:
                b[op["off"]:end] = op["bytes"]
        elif k == "trunc":
            del b[op["len"]:]
            if len(b) < op["len"]:
                b.extend(b"\0" * (op["len"] - len(b)))
        elif len(b) < op["len"]:
            b.extend(b"\0" * (op["len"] - len(b)))
    elif k == "rename":
        q = op["path2"]
        e = op.get("ent")
        if e is None:
            return
        if e[0] == "d":
            moved = {n: v for n, v in st.names.items() if n == p or n.startswith(p + "/")}
            for n in moved:
                del st.names[n]
            for n, v in moved.items():
                st.names[q + n[len(p):]] = v
        else:
            if st.names.get(p) == e:
                del st.names[p]
            st.names[q] = e
    elif k == "link":
        if op.get("ent"):
            st.names[op["path2"]] = op["ent"]
    elif k == "symlink":
        st.names[p] = ("l", op["path2"])
    elif k == "mkdir":
        st.names[p] = ("d",)
    elif k in ("unlink", "rmdir"):
        st.names.pop(p, None)


def build(base, ops, k, include, zero_at=None):
    st = base.copy()
    for i in range(k):
        if i in include:
            apply(st, ops[i])
        elif i == zero_at:
            apply(st, ops[i], zero=True)
    return st


def visible(st, root):
    """What a reader sees: a name counts only while every directory above it does."""
    out = {}
    for p in sorted(st.names, key=lambda n: (n.count("/"), n)):
        if p == root:
            continue
        if not p.startswith(root + "/"):
            continue
        par = parent(p)
        if par != root and out.get(par, ("x",))[0] != "d":
            continue
        out[p] = st.names[p]
    return out


def digest(st, root):
    h = hashlib.sha256()
    for p, e in sorted(visible(st, root).items()):
        h.update(p.encode() + b"\0" + e[0].encode())
        if e[0] == "f":
            h.update(hashlib.sha256(bytes(st.inodes.get(e[1], b""))).digest())
        elif e[0] == "l":
            h.update(e[1].encode())
    return h.hexdigest()


def materialise(st, root):
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    made = {}
    for p, e in visible(st, root).items():
        if e[0] == "d":
            os.mkdir(p)
        elif e[0] == "l":
            os.symlink(e[1], p)
        elif e[1] in made:
            os.link(made[e[1]], p)
        else:
            with open(p, "wb") as f:
                f.write(st.inodes.get(e[1], b""))
            made[e[1]] = p
    # the cut was a while ago: the next run comes after a reboot, and a
    # temporary is as old as it will be once the grace time has passed
    then = os.stat(root).st_mtime - 86400
    for p in sorted(visible(st, root), key=lambda n: -n.count("/")):
        os.utime(p, (then, then), follow_symlinks=False)


# --- what must hold of a store and an OCI layout -----------------------------------------------

def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def blob_ok(blobs, d, problems, who):
    if not d or not d.startswith("sha256:"):
        return
    p = os.path.join(blobs, d[7:])
    if not os.path.isfile(p):
        problems.append("%s names %s, which is not there" % (who, d[:19]))


def manifest_refs(path):
    try:
        m = json.load(open(path))
    except (ValueError, OSError):
        return None
    refs = [m.get("config", {}).get("digest")] + [l.get("digest") for l in m.get("layers", [])]
    refs += [x.get("digest") for x in m.get("manifests", [])]
    return [r for r in refs if r]


LAZY = False  # --lazy-records


def record(d, name, files, root, problems):
    """A layout's index.json or a store's images.json in d, parsed, and what to call it."""
    who = os.path.relpath(os.path.join(d, name), root)
    if name not in files or not os.path.isdir(os.path.join(d, "blobs")):
        return None, who
    try:
        return json.load(open(os.path.join(d, name))), who
    except ValueError:
        problems.append("%s is not JSON" % who)
        return None, who


def check_tree(root):
    """What is wrong in root as it stands: a list of sentences."""
    problems = []
    for d, dirs, files in os.walk(root):
        if d.endswith("/blobs/sha256"):
            for n in files:
                p = os.path.join(d, n)
                if HEX64.match(n) and os.path.isfile(p) and not os.path.islink(p) and sha(p) != n:
                    problems.append("%s does not match its name" % os.path.relpath(p, root))
        blobs = os.path.join(d, "blobs", "sha256")
        ix, who = record(d, "index.json", files, root, problems)
        if ix is not None:
            for m in ix.get("manifests", []):
                dg = m.get("digest", "")
                blob_ok(blobs, dg, problems, who)
                mp = os.path.join(blobs, dg[7:])
                for r in (manifest_refs(mp) or []) if os.path.isfile(mp) else []:
                    blob_ok(blobs, r, problems, who + " (its manifest)")
        ij, who = record(d, "images.json", files, root, problems)
        if ij is not None:
            dropped = ij.get("dropped", {})
            for name, rec in ij.get("images", {}).items():
                for key in ("manifest", "index"):
                    dg = rec.get(key)
                    if not dg:
                        continue
                    blob_ok(blobs, dg, problems, who)
                    mp = os.path.join(blobs, dg[7:])
                    for r in (manifest_refs(mp) or []) if os.path.isfile(mp) and not LAZY else []:
                        if r not in dropped:
                            blob_ok(blobs, r, problems, who + " (its manifest)")
    return problems


def finals(root):
    """The durable names of a finished run: blobs, index.json, images.json's records."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if d.endswith("/blobs/sha256") and HEX64.match(n):
                out[rel] = n
            elif n == "index.json":
                out[rel] = json.dumps(json.load(open(p)), sort_keys=True)
            elif n == "images.json":
                out[rel] = json.dumps(json.load(open(p)).get("images", {}), sort_keys=True)
    return out


def leftovers(root):
    found = []
    for d, dirs, files in os.walk(root):
        for n in files + dirs:
            if LEFTOVER.search(n):
                found.append(os.path.relpath(os.path.join(d, n), root))
    return found


# --- the run --------------------------------------------------------------------------------------

def sh(cmd, env=None, timeout=300):
    try:
        r = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stderr.strip().splitlines()[-1:] if r.stderr.strip() else []
    except subprocess.TimeoutExpired:
        return 124, ["timed out"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--cmd", required=True)
    ap.add_argument("--rerun")
    ap.add_argument("--gc")
    ap.add_argument("--report")
    ap.add_argument("--keep-failures", help="a directory: the first failing state of each kind is copied there")
    ap.add_argument("--max-states", type=int, default=4000)
    ap.add_argument("--lazy-records", action="store_true",
                    help="a record names its manifest only: the blobs come when asked (a site cache)")
    a = ap.parse_args()
    global LAZY
    LAZY = a.lazy_records
    root = os.path.realpath(a.root)
    so = os.environ.get("FSREC_SO")
    if not so or not os.path.exists(so):
        raise SystemExit("explore: FSREC_SO must name fsrec.so")
    work = root + ".explore"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    log = os.path.join(work, "ops.jsonl")
    base = snapshot(root)
    shutil.copytree(root, os.path.join(work, "base"), symlinks=True)
    env = dict(os.environ, FSREC_ROOT=root, FSREC_LOG=log, LD_PRELOAD=so)
    rc, err = sh(a.cmd, env)
    if rc != 0:
        raise SystemExit("explore: %s: the recorded run failed (exit %d): %s" % (a.name, rc, " ".join(err)))
    want = finals(root)
    if not os.path.exists(log):
        print("explore: %s: the run recorded no operation under %s" % (a.name, root), file=sys.stderr)
        sys.exit(2)
    ops = resolve(base, load_log(log))
    if not ops:
        print("explore: %s: the run recorded no operation under %s" % (a.name, root), file=sys.stderr)
        sys.exit(2)

    states = {}  # digest -> (k, how)
    count = 0
    for k in range(len(ops) + 1):
        forced = forced_by(ops, k)
        everything = set(range(k))
        cands = [(everything, None, "all"), (forced, None, "forced only")]
        for j in range(k):
            if j in forced:
                continue
            cands.append((everything - {j}, None, "lost #%d %s %s" % (j, ops[j]["op"], os.path.relpath(ops[j]["path"], root))))
            if ops[j]["op"] == "write":
                cands.append((everything - {j}, j, "zeros #%d %s" % (j, os.path.relpath(ops[j]["path"], root))))
        for inc, zero, how in cands:
            count += 1
            st = build(base, ops, k, inc, zero)
            dg = digest(st, root)
            if dg not in states:
                states[dg] = (k, how, st)
        if len(states) > a.max_states:
            raise SystemExit("explore: %s: more than %d distinct states" % (a.name, a.max_states))

    res = {"workload": a.name, "operations": len(ops), "crash_points": len(ops) + 1, "states": count,
           "distinct": len(states), "wrong_as_cut": 0, "not_recovered": 0, "exit5": 0, "leftovers": 0,
           "examples": {}}

    def note(kind, k, how, detail):
        res[kind] += 1
        ex = res["examples"].setdefault(kind, [])
        if len(ex) < 5:
            ex.append("after op %d (%s): %s" % (k, how, detail))
        if a.keep_failures and len(ex) == 1:
            dst = os.path.join(a.keep_failures, "%s-%s" % (a.name, kind))
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(root, dst, symlinks=True)

    rerun = a.rerun or a.cmd
    for dg, (k, how, st) in states.items():
        materialise(st, root)
        bad = check_tree(root)
        if bad:
            note("wrong_as_cut", k, how, bad[0])
        rc, err = sh(rerun)
        got = finals(root) if rc == 0 else {}
        missing = [n for n, v in want.items() if got.get(n) != v]
        bad = check_tree(root)
        if rc == 5:
            note("exit5", k, how, " ".join(err))
        if rc != 0 or bad or missing:
            note("not_recovered", k, how, "exit %d: %s" % (rc, " ".join(err) or (bad or missing)[0]))
            continue
        if a.gc:
            sh(a.gc)
        left = leftovers(root)
        if left:
            note("leftovers", k, how, ", ".join(left[:3]))
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(os.path.join(work, "base"), root, symlinks=True)
    if a.report:
        with open(a.report, "w") as f:
            json.dump(res, f, indent=1)
    print("| %s | %d | %d | %d | %d | %d | %d | %d |" % (a.name, res["crash_points"], res["states"], res["distinct"],
          res["wrong_as_cut"], res["not_recovered"], res["exit5"], res["leftovers"]))
    for kind, ex in res["examples"].items():
        for e in ex:
            print("    %s: %s" % (kind, e), file=sys.stderr)


if __name__ == "__main__":
    main()
