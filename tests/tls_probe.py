"""tls_probe.py: PORT KIND: one hand-made ClientHello to 127.0.0.1:PORT, then
the first answer the server gives, as one line:
  "hello VERSION CIPHER COMPRESSION EXTS"  a ServerHello (hex values; EXTS
                                           the extension types, comma-separated)
  "alert LEVEL DESCRIPTION"                an alert record
  "closed"                                 the connection closed first
KIND: sslv3 (client_version 3.0, SSLv3 suites, no extension) or
compress (TLS 1.2, AEAD ECDHE suites, compression methods DEFLATE then null)
or compress-only (DEFLATE alone, no null method)."""
import socket
import struct
import sys


def ext(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def client_hello(version, suites, compression, extensions):
    body = struct.pack("!H", version) + bytes(32) + b"\x00"
    body += struct.pack("!H", 2 * len(suites)) + b"".join(struct.pack("!H", s) for s in suites)
    body += bytes([len(compression)]) + bytes(compression)
    if extensions:
        exts = b"".join(extensions)
        body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16" + struct.pack("!HH", min(version, 0x0301), len(hs)) + hs


def tls12_extensions():
    groups = [0x001D, 0x0017, 0x0018]  # x25519, secp256r1, secp384r1
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501]
    return [
        ext(0x000A, struct.pack("!H", 2 * len(groups)) + b"".join(struct.pack("!H", g) for g in groups)),
        ext(0x000B, b"\x01\x00"),
        ext(0x000D, struct.pack("!H", 2 * len(sigalgs)) + b"".join(struct.pack("!H", a) for a in sigalgs)),
    ]


def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def answer(s):
    """The first alert or ServerHello the server sends."""
    buf = b""
    while True:
        head = read_exact(s, 5)
        if head is None:
            return "closed"
        ctype, _, length = struct.unpack("!BHH", head)
        frag = read_exact(s, length)
        if frag is None:
            return "closed"
        if ctype == 21:
            return "alert %d %d" % (frag[0], frag[1])
        if ctype != 22:
            return "record %d" % ctype
        buf += frag
        if len(buf) < 4:
            continue
        if buf[0] != 2:
            return "handshake %d" % buf[0]
        n = struct.unpack("!I", b"\x00" + buf[1:4])[0]
        if len(buf) < 4 + n:
            continue
        sh = buf[4 : 4 + n]
        version = struct.unpack("!H", sh[0:2])[0]
        p = 2 + 32
        p += 1 + sh[p]
        cipher = struct.unpack("!H", sh[p : p + 2])[0]
        comp = sh[p + 2]
        p += 3
        exts = []
        if p + 2 <= len(sh):
            end = p + 2 + struct.unpack("!H", sh[p : p + 2])[0]
            p += 2
            while p + 4 <= end:
                kind, elen = struct.unpack("!HH", sh[p : p + 4])
                exts.append("%04x" % kind)
                p += 4 + elen
        return "hello %04x %04x %d %s" % (version, cipher, comp, ",".join(exts) or "-")


def main():
    port, kind = int(sys.argv[1]), sys.argv[2]
    aead = [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    if kind == "sslv3":
        # AES128-SHA, DES-CBC3-SHA, ECDHE-RSA-AES128-SHA, ECDHE-ECDSA-AES128-SHA
        hello = client_hello(0x0300, [0x002F, 0x000A, 0xC013, 0xC009], [0], [])
    elif kind == "compress":
        hello = client_hello(0x0303, aead, [1, 0], tls12_extensions())
    elif kind == "compress-only":
        hello = client_hello(0x0303, aead, [1], tls12_extensions())
    else:
        sys.exit("unknown kind " + kind)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(hello)
        try:
            print(answer(s))
        except (ConnectionResetError, socket.timeout) as e:
            print("closed (%s)" % type(e).__name__)


main()
