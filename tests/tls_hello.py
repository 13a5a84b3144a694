#!/usr/bin/env python3
"""tls_hello.py PORT CASE - send one hand-made ClientHello (or other first
flight) to 127.0.0.1:PORT and print what the server answered, as one line:

  server_hello version=0x0304 cipher=0x1301 group=0x001d then flight
  server_hello version=0x0303 cipher=0xc02f then curve=0x0017
  hrr cipher=0x1301 group=0x0017        (a TLS 1.3 HelloRetryRequest)
  alert 40                              (a fatal alert before any ServerHello)
  closed                                (TCP closed with no TLS record)
  reset                                 (TCP reset with no TLS record)
  timeout                               (nothing within the time limit)

After a ServerHello, "then" says what followed: TLS 1.2, the
ServerKeyExchange's curve; TLS 1.3, "flight" (its encrypted flight came),
an alert, or a close.

The same way scanners such as sslscan and testssl.sh probe a server: raw
ClientHellos, only the server's first records parsed. Standard library
only; every socket operation has a timeout. CASE names are listed in CASES
below; `tls_hello.py list` prints them.
"""
import os
import socket
import struct
import sys

TIMEOUT = 5.0

# SHA-256("HelloRetryRequest"), the random of a HelloRetryRequest (RFC 8446 4.1.3).
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")

TLS13_SUITES = [0x1301, 0x1302, 0x1303]
TLS12_ECDHE = [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]

X25519, SECP256R1, SECP384R1, SECP521R1, X448 = 0x001D, 0x0017, 0x0018, 0x0019, 0x001E
FFDHE2048, FFDHE3072, FFDHE4096, FFDHE6144, FFDHE8192 = 0x0100, 0x0101, 0x0102, 0x0103, 0x0104
# Groups sslscan probes one by one besides the above (brainpool for TLS 1.3,
# and an unassigned value).
BRAINPOOL256_TLS13, BRAINPOOL384_TLS13, BRAINPOOL512_TLS13 = 0x001F, 0x0020, 0x0021
UNASSIGNED = 0x7A7A

# Generator points: valid public keys whatever the server checks.
P256_G = bytes.fromhex(
    "04"
    "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
    "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"
)
P384_G = bytes.fromhex(
    "04"
    "AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
    "5502F25DBF55296C3A545E3872760AB7"
    "3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
    "0A60B1CE1D7E819D7A431D7C90EA0E5F"
)
P521_G = bytes.fromhex(
    "04"
    "00C6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D"
    "3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5BD66"
    "011839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E"
    "662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD16650"
)


# Key shares other than the default one for a group: (group, bytes).
X25519_HIGH_BIT = (X25519, bytes([9]) + bytes(30) + b"\x80")  # u = 9 with bit 255 set
P256_OFF_CURVE = (SECP256R1, P256_G[:-1] + bytes([P256_G[-1] ^ 1]))


def key_share(group):
    """A well-formed public value for GROUP (the server never learns it is
    not ours: only its first answer is read)."""
    if isinstance(group, tuple):
        return group[1]
    if group == X25519:
        return bytes([9]) + bytes(31)  # the base point u = 9
    if group == X448:
        return bytes([5]) + bytes(55)
    if group == SECP256R1:
        return P256_G
    if group == SECP384R1:
        return P384_G
    if group == SECP521R1:
        return P521_G
    if FFDHE2048 <= group <= FFDHE8192:
        size = {FFDHE2048: 256, FFDHE3072: 384, FFDHE4096: 512, FFDHE6144: 768, FFDHE8192: 1024}[group]
        return bytes(size - 1) + b"\x02"  # y = 2: inside [2, p-2]
    return os.urandom(65)


def ext(etype, body):
    return struct.pack("!HH", etype, len(body)) + body


def vec16(b):
    return struct.pack("!H", len(b)) + b


def vec8(b):
    return struct.pack("!B", len(b)) + b


def u16list(vals):
    return b"".join(struct.pack("!H", v) for v in vals)


SIG_ALGS = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0807]


def client_hello(
    suites,
    legacy_version=0x0303,
    versions=None,
    groups=None,
    shares=None,
    alpn=None,
    ec_point_formats=True,
):
    """A ClientHello record. VERSIONS: supported_versions (None: none, a
    TLS 1.2-or-older hello). SHARES: groups to send a key share for."""
    exts = b""
    exts += ext(0x0000, vec16(b"\x00" + vec16(b"localhost")))  # server_name
    if groups is not None:
        exts += ext(0x000A, vec16(u16list(groups)))
    if ec_point_formats:
        exts += ext(0x000B, vec8(b"\x00"))
    exts += ext(0x000D, vec16(u16list(SIG_ALGS)))
    if alpn is not None:
        exts += ext(0x0010, vec16(b"".join(vec8(p.encode()) for p in alpn)))
    if versions is not None:
        exts += ext(0x002B, vec8(u16list(versions)))
        exts += ext(0x002D, vec8(b"\x01"))  # psk_key_exchange_modes: psk_dhe_ke
    if shares is not None:
        exts += ext(0x0033, vec16(b"".join(struct.pack("!H", g[0] if isinstance(g, tuple) else g) + vec16(key_share(g))
                                         for g in shares)))
    body = (
        struct.pack("!H", legacy_version)
        + os.urandom(32)
        + vec8(os.urandom(32))
        + vec16(u16list(suites))
        + vec8(b"\x00")
        + vec16(exts)
    )
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    # Records carry at most 2^14 bytes (RFC 8446 5.1): a longer hello is
    # fragmented across records, as real clients do.
    return b"".join(b"\x16\x03\x01" + vec16(hs[i : i + 16384]) for i in range(0, len(hs), 16384))


def bogus_suites(n):
    """N distinct cipher suite values no server implements (0x0A00..),
    like the long lists sslscan sends."""
    return [0x0A00 + i for i in range(n)]


def tls13(groups, shares=None, suites=None, **kw):
    return client_hello(
        suites if suites is not None else TLS13_SUITES,
        versions=[0x0304],
        groups=groups,
        shares=groups if shares is None else shares,
        **kw,
    )


def tls12(suites=None, groups=(X25519, SECP256R1, SECP384R1), **kw):
    return client_hello(suites if suites is not None else TLS12_ECDHE, groups=list(groups), **kw)


def one_group(g):
    # As sslscan's group probe: TLS 1.3, one group, its key share.
    return tls13([g])


CASES = {
    # 1. Long cipher suite lists (sslscan's version probes).
    "tls12_200_suites": lambda: tls12(bogus_suites(200) + [0xC02F, 0xC02B]),
    "tls13_200_suites": lambda: tls13([X25519], suites=bogus_suites(200) + TLS13_SUITES),
    "tls12_10000_suites": lambda: tls12(bogus_suites(10000) + [0xC02F, 0xC02B]),
    "tls12_200_bogus_only": lambda: tls12(bogus_suites(200)),
    # 2. No group in common.
    "tls13_no_common_group": lambda: tls13([FFDHE2048, X448, UNASSIGNED]),
    "tls13_no_common_group_no_share": lambda: tls13([UNASSIGNED], shares=[]),
    # 3. Several key shares, one or more of them supported.
    "tls13_shares_x25519_p256_unknown": lambda: tls13([UNASSIGNED, X25519, SECP256R1], shares=[UNASSIGNED, X25519, SECP256R1]),
    "tls13_shares_unknown_p256": lambda: tls13([UNASSIGNED, X448, SECP256R1]),
    "tls13_shares_p384_first": lambda: tls13([SECP384R1, X25519]),
    "tls13_group_no_share": lambda: tls13([X448, SECP256R1], shares=[X448]),
    "tls13_p521_p384": lambda: tls13([SECP521R1, SECP384R1]),
    # A random X25519 share has bit 255 set half the time; RFC 7748 5 says
    # to mask it, so it is a valid share.
    "tls13_x25519_high_bit": lambda: tls13([X25519], shares=[X25519_HIGH_BIT]),
    # Not a point on P-256: RFC 8446 4.2.8.2 says to refuse it (both wolfSSL
    # builds take it; docs/reliability.md).
    "tls13_p256_off_curve": lambda: tls13([SECP256R1], shares=[P256_OFF_CURVE]),
    # The same share twice (RFC 8446 4.2.8: servers MAY abort with illegal_parameter).
    "tls13_duplicate_share": lambda: tls13([X25519], shares=[X25519, X25519]),
    # TLS 1.2 ECDHE with only one curve (the server has P-521 and X25519 for
    # TLS 1.2, not sect163k1 or any FFDHE group).
    "tls12_group_secp521r1_only": lambda: tls12(groups=[SECP521R1]),
    "tls12_group_sect163k1_only": lambda: tls12(groups=[0x0001]),
    "tls12_group_ffdhe2048_only": lambda: tls12(groups=[FFDHE2048]),
    "tls12_group_x25519_only": lambda: tls12(groups=[X25519]),
    # 4. (A required client certificate that does not come needs a whole
    # handshake: test_tls_conformance.sh uses openssl s_client for it.)
    # 5. Other refusals.
    "tls11_only": lambda: client_hello([0xC013, 0xC014, 0x002F, 0x0035], legacy_version=0x0302,
                                       groups=[X25519, SECP256R1]),
    "tls12_no_common_cipher": lambda: tls12([0x002F, 0x0035, 0x009C]),
    "tls13_no_common_cipher": lambda: tls13([X25519], suites=[0x1304, 0x1305]),
    "alpn_no_overlap": lambda: tls13([X25519], alpn=["foo"]),
    "garbage_after_header": lambda: b"\x16\x03\x01\x00\x20" + bytes(range(1, 33)),
    "handshake_type_garbage": lambda: b"\x16\x03\x01\x00\x08" + b"\x63\x00\x00\x04" + b"abcd",
    # A ClientHello whose body is cut short inside the random.
    "client_hello_truncated_body": lambda: b"\x16\x03\x01\x00\x14" + b"\x01\x00\x00\x10" + b"\x03\x03" + bytes(14),
}
for _g, _name in [
    (X25519, "x25519"), (SECP256R1, "secp256r1"), (SECP384R1, "secp384r1"), (SECP521R1, "secp521r1"),
    (X448, "x448"), (FFDHE2048, "ffdhe2048"), (FFDHE3072, "ffdhe3072"), (FFDHE4096, "ffdhe4096"),
    (FFDHE6144, "ffdhe6144"), (FFDHE8192, "ffdhe8192"), (BRAINPOOL256_TLS13, "brainpoolP256r1tls13"),
    (UNASSIGNED, "unassigned"),
]:
    CASES["group_" + _name] = (lambda g: lambda: one_group(g))(_g)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


class Records:
    """The server's records, one handshake message or alert at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.hs = b""

    def next(self):
        """('hs', type, body) | ('alert', level, desc) | ('record', type, len)."""
        while True:
            if len(self.hs) >= 4:
                mlen = struct.unpack("!I", b"\x00" + self.hs[1:4])[0]
                if len(self.hs) >= 4 + mlen:
                    mtype, body = self.hs[0], self.hs[4 : 4 + mlen]
                    self.hs = self.hs[4 + mlen :]
                    return ("hs", mtype, body)
            hdr = recv_exact(self.sock, 5)
            ctype, _ver, length = struct.unpack("!BHH", hdr)
            body = recv_exact(self.sock, length)
            if ctype == 21 and len(body) == 2:
                return ("alert", body[0], body[1])
            if ctype == 22:
                self.hs += body
                continue
            return ("record", ctype, length)


def first_answer(s):
    """Reads the server's first flight; returns the line."""
    r = Records(s)
    try:
        kind, a, body = r.next()
        if kind == "alert":
            return "alert %d" % body
        if kind != "hs":
            return "record_type %d" % a
        if a != 2:
            return "handshake_type %d" % a
        line = parse_server_hello(body)
        if line.startswith("hrr"):
            return line
        return line + " then " + rest_of_flight(r, line)
    except EOFError:
        return "closed"
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "reset"


def rest_of_flight(r, line):
    """What follows a ServerHello: TLS 1.2, the ServerKeyExchange's curve up
    to ServerHelloDone; TLS 1.3, encrypted records until 200 bytes of them
    (the server's flight, with its certificate: the server goes on; an
    encrypted alert is 19 bytes) or an alert or a close."""
    tls13 = "version=0x0304" in line
    encrypted = 0
    try:
        while True:
            kind, a, b = r.next()
            if kind == "alert":
                return "alert %d" % b
            if kind == "record":
                if a == 20:  # TLS 1.3 middlebox-compatibility change_cipher_spec
                    continue
                encrypted += b
                if encrypted >= 200:
                    return "flight"
                continue
            if tls13:
                return "handshake_type %d" % a
            if a == 12 and len(b) >= 3 and b[0] == 3:  # ServerKeyExchange, named_curve
                return "curve=0x%04x" % struct.unpack("!H", b[1:3])[0]
            if a == 14:
                return "no_key_exchange"
    except EOFError:
        return "closed"
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "reset"


def parse_server_hello(m):
    version = struct.unpack("!H", m[0:2])[0]
    random = m[2:34]
    sid_len = m[34]
    i = 35 + sid_len
    cipher = struct.unpack("!H", m[i : i + 2])[0]
    i += 3  # cipher, compression
    group = None
    if i + 2 <= len(m):
        end = i + 2 + struct.unpack("!H", m[i : i + 2])[0]
        i += 2
        while i + 4 <= end:
            etype, elen = struct.unpack("!HH", m[i : i + 4])
            data = m[i + 4 : i + 4 + elen]
            if etype == 0x002B:
                version = struct.unpack("!H", data[0:2])[0]
            elif etype == 0x0033:
                group = struct.unpack("!H", data[0:2])[0]
            i += 4 + elen
    g = "" if group is None else " group=0x%04x" % group
    if random == HRR_RANDOM:
        return "hrr cipher=0x%04x%s" % (cipher, g)
    return "server_hello version=0x%04x cipher=0x%04x%s" % (version, cipher, g)


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "list":
        print("\n".join(sorted(CASES)))
        return 0
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: tls_hello.py PORT CASE (tls_hello.py list: the cases)", file=sys.stderr)
        return 2
    port, case = int(sys.argv[1]), sys.argv[2]
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    try:
        s.sendall(CASES[case]())
        print(first_answer(s))
    finally:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
