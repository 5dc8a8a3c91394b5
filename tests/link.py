#!/usr/bin/env python3
"""A link emulator for the tests and the bench, where the kernel has no netem.

Two network namespaces of our own, A and B, each with a TUN device; this
process holds both devices and forwards every IP packet between them with
the link's rate (a serialisation queue of bounded size, as a bottleneck
router has), one-way delay, jitter, loss and outages.  A TCP relay joins it
to the machine's loopback:

    client -> 127.0.0.1:LISTEN -> (namespace A) ==link==> (namespace B) -> TARGET

so that a registry on 127.0.0.1 keeps its certificate, and any client on the
machine (edgefetch, dockerd, containerd, podman, skopeo) can be pointed at
127.0.0.1:LISTEN.  TCP across the link runs between the relay's sockets in A
and B, with the system's congestion control or the one --cc names.

A relay splits TCP: the client's own socket options never reach the link.
With --inside there is no relay on loopback; the client runs in namespace A
(`ip netns exec efl-NAME-a CLIENT`) and reaches the target at
10.213.0.2:9000 across the link itself, its own TCP end to end with B's
relay (whose sockets --cc sets: the sender of a download).  The target's
certificate must then name IP 10.213.0.2.

  link.py (--listen PORT | --inside) --target HOST:PORT [--rate 20mbit] [--delay 40ms]
          [--jitter 0ms] [--loss 1%] [--queue bdp|64kb] [--down 5/20] [--reset]
          [--cc cubic] [--stats FILE] [--name N]

--down D/P: the link is down D seconds of every P (from P - D on); --reset:
every open connection is reset when an outage starts, as when a modem
re-attaches and the carrier's NAT forgets it.  --stats: a JSON file, written
every second and at exit, with the bytes the link carried each way (and
the packets it dropped, and the connections it reset).  It
runs until SIGTERM or SIGINT and removes its namespaces.  Root only.
"""
import argparse
import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
LIBC = ctypes.CDLL(None, use_errno=True)
NET_A, NET_B = "10.213.0.1", "10.213.0.2"  # inside the namespaces only
RELAY_PORT = 9000


def quantity(s, units):
    s = s.strip().lower()
    for u, m in sorted(units.items(), key=lambda x: -len(x[0])):
        if s.endswith(u):
            return float(s[: -len(u)]) * m
    return float(s)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


def in_ns(ns, fn, *args):
    """fn(*args) run by a thread that entered namespace ns (setns is per thread)."""
    out = {}

    def run():
        try:
            setns("/run/netns/" + ns)
            out["v"] = fn(*args)
        except BaseException as e:  # handed to the caller
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True)


def tun_open():
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"efl0", IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


class Link:
    def __init__(self, a):
        self.rate = quantity(a.rate, {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "bit": 1}) / 8  # bytes/s
        self.delay = quantity(a.delay, {"ms": 1e-3, "s": 1})
        self.jitter = quantity(a.jitter, {"ms": 1e-3, "s": 1})
        self.loss = quantity(a.loss, {"%": 1e-2})
        bdp = max(64 * 1024, self.rate * 2 * self.delay)
        self.queue = bdp if a.queue == "bdp" else quantity(a.queue, {"kb": 1024, "mb": 1 << 20, "b": 1})
        self.down, self.period = (float(x) for x in a.down.split("/")) if a.down else (0.0, 0.0)
        self.reset = a.reset
        self.t0 = time.monotonic()
        self.carried = {"a_to_b": 0, "b_to_a": 0}  # IP packets, headers and retransmissions included
        self.payload = {"a_to_b": 0, "b_to_a": 0}  # their TCP payload, retransmissions included
        self.dropped = {"loss": 0, "queue": 0, "down": 0}
        self.resets = 0  # connections reset at outages
        self.lock = threading.Lock()
        self.conns = set()

    def is_down(self, now):
        return self.period > 0 and (now - self.t0) % self.period >= self.period - self.down

    def forward(self, fa, fb, stop):
        """Move packets both ways until stop is set."""
        heap, seq = [], 0
        free_at = {fa: 0.0, fb: 0.0}  # when each direction's serialiser is free
        backlog = {fa: 0, fb: 0}  # bytes queued for it
        other = {fa: fb, fb: fa}
        name = {fa: "a_to_b", fb: "b_to_a"}
        was_down = False
        while not stop.is_set():
            now = time.monotonic()
            down = self.is_down(now)
            if down and not was_down and self.reset:
                with self.lock:
                    for c in list(self.conns):
                        reset(c)
                        self.resets += 1
            was_down = down
            wait = 0.2 if not heap else max(0.0, min(0.2, heap[0][0] - now))
            r, _, _ = select.select([fa, fb], [], [], wait)
            now = time.monotonic()
            for fd in r:
                for _ in range(64):
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if down:
                        self.dropped["down"] += 1
                        continue
                    if self.loss and random.random() < self.loss:
                        self.dropped["loss"] += 1
                        continue
                    if backlog[fd] + len(pkt) > self.queue:
                        self.dropped["queue"] += 1
                        continue
                    start = max(now, free_at[fd])
                    free_at[fd] = start + len(pkt) / self.rate
                    backlog[fd] += len(pkt)
                    j = random.uniform(0, self.jitter) if self.jitter else 0.0
                    seq += 1
                    # leaves the queue at free_at, arrives delay (+ jitter) later
                    heapq.heappush(heap, (free_at[fd] + self.delay + j, seq, fd, free_at[fd], pkt))
            while heap and heap[0][0] <= now:
                _, _, fd, _, pkt = heapq.heappop(heap)
                backlog[fd] -= len(pkt)
                if self.is_down(now):
                    self.dropped["down"] += 1
                    continue
                try:
                    os.write(other[fd], pkt)
                    self.carried[name[fd]] += len(pkt)
                    self.payload[name[fd]] += tcp_payload(pkt)
                except OSError:
                    pass


def congestion(sock, cc):
    """The congestion control of a socket across the link (root may pick any the kernel offers)."""
    if cc:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())


def connect_across(cc):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    congestion(s, cc)
    s.settimeout(30)
    s.connect((NET_B, RELAY_PORT))
    return s


def tcp_payload(pkt):
    """Bytes of TCP payload in an IPv4 packet (0 for anything else)."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return 0
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 20:
        return 0
    return max(0, len(pkt) - ihl - (pkt[ihl + 12] >> 4) * 4)


def reset(conn):
    """Reset: SO_LINGER 0, then wake the reader (shutdown of the read side
    sends nothing); its close sends the RST."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def pipe(src, dst, link, pair):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in pair:
            with link.lock:
                link.conns.discard(s)
            try:
                s.close()
            except OSError:
                pass


def splice(a, b, link):
    with link.lock:
        link.conns.update((a, b))
    pair = (a, b)
    threading.Thread(target=pipe, args=(a, b, link, pair), daemon=True).start()
    threading.Thread(target=pipe, args=(b, a, link, pair), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int)
    ap.add_argument("--inside", action="store_true", help="no loopback relay: the client runs in namespace A")
    ap.add_argument("--target", required=True)
    ap.add_argument("--rate", default="20mbit")
    ap.add_argument("--delay", default="40ms", help="one way")
    ap.add_argument("--jitter", default="0ms")
    ap.add_argument("--loss", default="0%")
    ap.add_argument("--queue", default="bdp", help="the bottleneck's queue, each way (default: one bandwidth-delay product)")
    ap.add_argument("--down", help="D/P: down D s of every P s")
    ap.add_argument("--reset", action="store_true")
    ap.add_argument("--cc", help="congestion control of the sockets across the link (cubic, bbr, reno); default: the system's")
    ap.add_argument("--stats")
    ap.add_argument("--name", default=str(os.getpid()))
    a = ap.parse_args()
    if (a.listen is None) == (not a.inside):
        ap.error("one of --listen and --inside")
    link = Link(a)
    ns = {"a": "efl-%s-a" % a.name, "b": "efl-%s-b" % a.name}
    stop = threading.Event()
    made = []

    def cleanup(*_):
        stop.set()

    signal.signal(signal.SIGTERM, cleanup)
    signal.signal(signal.SIGINT, cleanup)
    try:
        fds = {}
        for side, addr, peer in (("a", NET_A, NET_B), ("b", NET_B, NET_A)):
            ip("netns", "add", ns[side])
            made.append(ns[side])
            fds[side] = in_ns(ns[side], tun_open)
            ip("-n", ns[side], "link", "set", "lo", "up")
            ip("-n", ns[side], "addr", "add", addr + "/32", "peer", peer + "/32", "dev", "efl0")
            ip("-n", ns[side], "link", "set", "efl0", "mtu", "1500", "up")
        th, tp = a.target.rsplit(":", 1)
        far = in_ns(ns["b"], lambda: socket.create_server((NET_B, RELAY_PORT), backlog=64))
        near = None if a.inside else socket.create_server(("127.0.0.1", a.listen), backlog=64)

        def far_loop():
            # B's side: what crosses the link goes on to the target, from the machine's own namespace
            while not stop.is_set():
                try:
                    c, _ = far.accept()
                    congestion(c, a.cc)
                    t = socket.create_connection((th, int(tp)))
                    for s in (c, t):
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    splice(c, t, link)
                except OSError:
                    if stop.is_set():
                        return

        def across(c):
            # the connection across the link takes a round trip: in a
            # thread of its own, so that a client's connections open at
            # once, as they would on the link itself
            try:
                out = in_ns(ns["a"], connect_across, a.cc)
            except OSError:
                c.close()
                return
            out.settimeout(None)
            # no Nagle on the relay's sockets: a client's small writes (a TLS
            # Finished, then its request) go at once, as its own socket sends them
            for s in (c, out):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            splice(c, out, link)

        def near_loop():
            while not stop.is_set():
                try:
                    c, _ = near.accept()
                    threading.Thread(target=across, args=(c,), daemon=True).start()
                except OSError:
                    if stop.is_set():
                        return

        for f in (far_loop, near_loop) if near else (far_loop,):
            threading.Thread(target=f, daemon=True).start()
        fw = threading.Thread(target=link.forward, args=(fds["a"], fds["b"], stop), daemon=True)
        fw.start()
        if near:
            print("link up: 127.0.0.1:%d -> %s" % (a.listen, a.target), flush=True)
        else:
            print("link up: in netns %s, %s:%d -> %s" % (ns["a"], NET_B, RELAY_PORT, a.target), flush=True)
        while not stop.wait(1.0):
            if a.stats:
                save(a.stats, link)
    finally:
        stop.set()
        if a.stats:
            save(a.stats, link)
        for n in made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
    return 0


def save(path, link):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"carried": link.carried, "payload": link.payload, "dropped": link.dropped, "resets": link.resets}, f)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
