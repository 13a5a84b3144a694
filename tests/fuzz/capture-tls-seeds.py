#!/usr/bin/env python3
"""capture-tls-seeds.py OUTDIR [ATOLL_SERVE]: records what real TLS clients send, as seeds
for the TLS fuzz targets (tls_ingest, tls_alpn).

Runs `openssl s_server` with the fuzz certificates (tests/fuzz/certs) on a
loopback port, puts a recording proxy in front of it, and drives `openssl
s_client` through it with several option sets (TLS 1.3 / 1.2, ALPN lists,
client certificate, SNI). Each session's client-to-server bytes (ClientHello
and the flights after it) become one file in OUTDIR. A developer tool: the
seeds it made are checked in under tests/fuzz/corpus/; CI never runs it.
Given the path of a built atoll-serve, the resumption sessions run against
it instead, so the tickets offered are atoll's own (their size and layout
are what wolfSSL checks before atoll's ticket callback runs).
"""
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CERTS = os.path.join(HERE, "certs")

SESSIONS = {
    "tls13_alpn_h2_http11": ["-alpn", "h2,http/1.1", "-servername", "localhost"],
    "tls13_no_alpn": ["-servername", "localhost"],
    "tls13_alpn_unknown": ["-alpn", "spdy/3,foo"],
    "tls13_client_cert": ["-alpn", "http/1.1", "-cert", os.path.join(CERTS, "client1.pem"),
                          "-key", os.path.join(CERTS, "client1_key.pem")],
    "tls12_alpn_h2_http11": ["-tls1_2", "-alpn", "h2,http/1.1", "-servername", "localhost"],
    "tls12_client_cert": ["-tls1_2", "-cert", os.path.join(CERTS, "client1.pem"),
                          "-key", os.path.join(CERTS, "client1_key.pem")],
    "tls12_chacha": ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305", "-alpn", "http/1.1"],
}

# Resumption: a first session saves its ticket (-sess_out, not recorded),
# the recorded second one offers it (TLS 1.2 session ticket, TLS 1.3 PSK):
# atoll's ticket callback opens what the client sends.
RESUME = {
    "tls12_resume_ticket": ["-tls1_2", "-alpn", "http/1.1"],
    "tls13_resume_psk": ["-alpn", "h2"],
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pump(src, dst, record):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.append(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    sport, pport = free_port(), free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(sport), "-cert", os.path.join(CERTS, "server_chain.pem"),
         "-key", os.path.join(CERTS, "server_key.pem"), "-verify", "1", "-CAfile",
         os.path.join(CERTS, "client_authority.pem"), "-alpn", "http/1.1,h2", "-quiet", "-naccept", "100"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    atoll = None
    aport = sport
    if len(sys.argv) > 2:
        aport = free_port()
        atoll = subprocess.Popen(
            [sys.argv[2], "--port", str(aport), "--isolates", "1", "--cert", os.path.join(CERTS, "server_chain.pem"),
             "--key", os.path.join(CERTS, "server_key.pem"), "--alpn", "http/1.1,h2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", pport))
    lst.listen(4)
    try:
        sessions = [(name, args, sport) for name, args in SESSIONS.items()]
        for name, args in RESUME.items():
            sess = os.path.join(out, ".%s.sess" % name)
            sessions.append((None, args + ["-sess_out", sess], aport))
            sessions.append((name, args + ["-sess_in", sess], aport))
        for name, args, upstream in sessions:
            client = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % pport, "-quiet"] + args,
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            conn, _ = lst.accept()
            up = socket.create_connection(("127.0.0.1", upstream))
            record = []
            t1 = threading.Thread(target=pump, args=(conn, up, record))
            t2 = threading.Thread(target=pump, args=(up, conn, None))
            t1.start()
            t2.start()
            time.sleep(0.5)
            try:  # the client may have ended already (e.g. refused by the server)
                client.stdin.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                client.stdin.close()
            except BrokenPipeError:
                pass
            client.wait(timeout=10)
            t1.join(timeout=5)
            conn.close()
            up.close()
            t2.join(timeout=5)
            if name is None:
                continue  # a priming session
            with open(os.path.join(out, name), "wb") as f:
                f.write(b"".join(record))
            print("%s: %d bytes" % (name, sum(map(len, record))))
        for name in RESUME:
            os.remove(os.path.join(out, ".%s.sess" % name))
    finally:
        server.kill()
        if atoll:
            atoll.kill()
        lst.close()


if __name__ == "__main__":
    main()
