#!/usr/bin/env python3
"""tests/fleet/fleet_client.py: the clients of tests/fleet/test_fleet.sh.

Subcommands (each prints one result line and exits 0 when it holds, 1 when
not; every socket has a timeout, so none can hang the test):
  whoami PORT CAFILE SRC N     N TLS connections from source address SRC:
                               GET /whoami must answer "SRC <our port>"
  resume PORT CAFILE N         one full handshake, then N connections that
                               offer its session: all must resume
  resume-on PORT_A PORT_B      a session from A offered to B (no certificate
                               check): prints "reused" or "full"
  refuse PORT MODE [SRC]       a client that must be refused by a server with
                               --proxy-protocol: MODE denied (a valid header
                               from SRC, outside the allow-list), malformed,
                               missing (TLS without a header), silent
                               (nothing sent: closed at the handshake
                               timeout); prints how long the close took
  haproxy-up SOCKET BACKEND N  waits (20 s at most) for N servers of BACKEND
                               to be UP on HAProxy's stats socket
  haproxy-down SOCKET BACKEND SERVER
                               waits (20 s at most) for SERVER to be DOWN
"""
import socket
import ssl
import struct
import sys
import time

TIMEOUT = 10


def tls_context(cafile=None):
    """TLS 1.3 only (its tickets come after the handshake: get() reads a
    response first); the server verified against `cafile` when given."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def get(port, ctx, path, src="127.0.0.1", session=None):
    """One TLS connection, one request; returns (body, ssl socket info).
    A session is offered through the context that made it."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(src, 0))
    local_port = raw.getsockname()[1]
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    info = {"status": status, "local_port": local_port, "reused": s.session_reused, "session": s.session}
    s.close()
    return body.decode(errors="replace"), info


def cmd_whoami(port, cafile, src, n):
    ok = True
    for _ in range(int(n)):
        body, info = get(int(port), tls_context(cafile), "/whoami", src=src)
        want = f"{src} {info['local_port']}\n"
        print(f"whoami: sent from {src}:{info['local_port']}, server saw {body.strip()!r}")
        ok = ok and body == want and " 200 " in info["status"] + " "
    return ok


def cmd_resume_on(port_a, port_b):
    ctx = tls_context()
    _, first = get(int(port_a), ctx, "/")
    _, info = get(int(port_b), ctx, "/", session=first["session"])
    ok = " 200 " in info["status"] + " "
    print("reused" if ok and info["reused"] else "full" if ok else f"error: {info['status']}")
    return ok


def cmd_resume(port, cafile, n):
    ctx = tls_context(cafile)
    _, first = get(int(port), ctx, "/")
    session = first["session"]
    reused = 0
    for _ in range(int(n)):
        _, info = get(int(port), ctx, "/", session=session)
        reused += 1 if info["reused"] else 0
    print(f"resume: first handshake reused={first['reused']}, then {reused} of {n} resumed")
    return not first["reused"] and reused == int(n)


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, sport, dst, dport):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def closed_by_server(sock):
    """True when the server closes (EOF or reset) without sending data."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def cmd_refuse(port, mode, src="127.0.0.1"):
    port = int(port)
    t0 = time.monotonic()
    if mode == "missing":
        # A TLS client that does not know about the balancer: no header.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
            print("refuse missing: the handshake succeeded")
            return False
        except (ssl.SSLError, ConnectionResetError, OSError) as e:
            print(f"refuse missing: handshake refused ({type(e).__name__}) after {time.monotonic() - t0:.3f} s")
            return True
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(src, 0))
    if mode == "denied":
        sock.sendall(v2_header("203.0.113.5", 40000, "127.0.0.1", port) + b"\x16\x03\x01")
    elif mode == "malformed":
        sock.sendall(b"PROXY TCP4 203.0.113.5 127.0.0.1 40000\r\n")
    elif mode != "silent":
        raise SystemExit(f"unknown mode {mode}")
    ok = closed_by_server(sock)
    print(f"refuse {mode}: {'closed' if ok else 'NOT closed'} by the server after {time.monotonic() - t0:.3f} s")
    sock.close()
    return ok


def haproxy_stat(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(TIMEOUT)
    s.connect(path)
    s.sendall(b"show stat\n")
    data = read_all(s)
    s.close()
    lines = data.decode().splitlines()
    cols = lines[0].lstrip("# ").split(",")
    return [dict(zip(cols, line.split(","))) for line in lines[1:] if line]


def wait_haproxy(path, backend, pred, what):
    deadline = time.monotonic() + 20
    rows = []
    while time.monotonic() < deadline:
        try:
            rows = [r for r in haproxy_stat(path) if r["pxname"] == backend and r["svname"] not in ("BACKEND", "FRONTEND")]
            if pred(rows):
                print(f"haproxy: {what}: " + ", ".join(f"{r['svname']} {r['status']}" for r in rows))
                return True
        except OSError:
            pass
        time.sleep(0.05)
    print(f"haproxy: not {what} in 20 s: " + ", ".join(f"{r['svname']} {r['status']}" for r in rows))
    return False


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "whoami":
        return cmd_whoami(*args)
    if cmd == "resume":
        return cmd_resume(*args)
    if cmd == "resume-on":
        return cmd_resume_on(*args)
    if cmd == "refuse":
        return cmd_refuse(*args)
    if cmd == "haproxy-up":
        path, backend, n = args
        return wait_haproxy(path, backend, lambda rows: sum(r["status"] == "UP" for r in rows) >= int(n), f"{n} up")
    if cmd == "haproxy-down":
        path, backend, server = args
        return wait_haproxy(path, backend, lambda rows: any(r["svname"] == server and r["status"].startswith("DOWN")
                                                            for r in rows), f"{server} down")
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    try:
        sys.exit(0 if main(sys.argv) else 1)
    except (OSError, ssl.SSLError) as e:
        print(f"{sys.argv[1]}: {type(e).__name__}: {e}")
        sys.exit(1)
