#!/usr/bin/env bash
# build-wolfssl.sh - build wolfSSL made for atoll: x86-64 assembly, and only
# the features atoll uses.
#
# Debian's libwolfssl is built without AES-NI / Intel asm / SP asm, which makes
# TLS record crypto several times slower, and with --enable-distro, which
# turns on every feature: among them session certificates and alternate
# chains, two copies of a 9-certificate chain buffer (about 37 KB) inside
# every connection's WOLFSSL object. We rebuild it from Debian's *source*
# package of exactly the installed libwolfssl-dev version, so every Debian
# security patch is included, with Debian's compiler flags, atoll's feature
# list (below), three small patches of atoll's own (below: the peer
# certificate out of the WOLFSSL object; what TLS scanners found; a leak
# under ENOMEM) and the asm options,
# into a private prefix inside the repo:
#
#   <repo>/.deps/wolfssl-<debian-version>-atoll   (build log: <prefix>.log)
#
# Idempotent: when <prefix>/.built and <prefix>/lib/libwolfssl.{so,a} exist and
# the stamp records this script's configuration (feature flags, asm flags,
# patches), it reuses them and exits at once; a prefix built with another
# configuration is rebuilt in place (then rebuild the build trees too:
# struct layouts follow options.h). The system apt configuration is never
# modified: sources are fetched with a private, temporary apt configuration.
set -euo pipefail

log() { printf 'wolfssl: %s\n' "$*"; }
die() {
	printf 'wolfssl: error: %s\n' "$*" >&2
	exit 1
}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd -- "$script_dir/.." && pwd -P)

# The whole point is the x86-64 assembly; elsewhere the system library is as
# good as anything we would build here.
arch=$(uname -m)
if [[ $arch != x86_64 ]]; then
	log "$arch has no asm build here; using the system libwolfssl"
	exit 0
fi

status=$(dpkg-query -W -f='${Status}' libwolfssl-dev 2>/dev/null || true)
[[ $status == *' ok installed' ]] ||
	die "libwolfssl-dev is not installed (run scripts/deps.sh first)"
version=$(dpkg-query -W -f='${Version}' libwolfssl-dev)
[[ -n $version ]] || die "cannot determine the libwolfssl-dev version"

# --- configure flags ---------------------------------------------------------
# Not Debian's --enable-distro (everything on): the features atoll calls, each
# for a reason. tests/ exercise every one of them against this build (the
# release preset) and against Debian's full build (the sanitizer presets).
# Memory per idle TLS connection is what most of these choices are about
# (docs/performance.md): every WOLFSSL object, key schedule and session a
# connection holds is sized by them.
atoll_flags=(
	# The shared library for the tests and tools; the static one, position
	# independent, is linked into libatoll.so with its symbols hidden, so an
	# installed atoll carries this build and needs no wolfSSL of its own
	# (docs/operations.md, "Linking").
	--enable-shared --enable-static --with-pic
	--enable-tls13 --disable-oldtls         # TLS 1.2 and 1.3 only
	# X509/ASN1_TIME/X509_NAME stack calls, get1_session, SESSION_dup. Not
	# --enable-opensslall: OPENSSL_ALL grows every WOLFSSL object (6,352 ->
	# 5,808 bytes with WOLFSSL_NGINX below; WOLFSSL_CIPHER's description
	# strings, tls-unique copies, ...) and every session (512 -> 480: the
	# ticket's session ID), and adds OCSP and either-side methods atoll does
	# not use. What atoll needed from it comes from atoll_cppflags below.
	--enable-opensslextra
	--enable-alpn --enable-sni --enable-supportedcurves
	--enable-session-ticket                 # server tickets (atoll's key callback), client resumption
	--enable-curve25519 --enable-ed25519 --enable-chacha --enable-poly1305
	# AES-GCM without GHASH tables: the default ("4bit") puts a 512-byte table
	# in every Aes object, two per connection. With AES-NI the table is never
	# used (wc_AesGcmSetKey returns before computing it; the asm GHASH needs
	# only H); only the software path without AES-NI would use it, and there
	# "word" (64-bit multiply) serves, while atoll puts ChaCha20 first on such
	# CPUs anyway (atoll__tls_aes_fast).
	--enable-aesgcm=word
	--enable-certgen --enable-certext --enable-certreq --enable-keygen # atoll-serve's ephemeral certificate
	--enable-pwdbased                       # encrypted private keys (PKCS#8 and traditional PEM)
	--enable-reproducible-build
)
atoll_cppflags=(
	# Subject alternative names in generated certificates (atoll-serve): no
	# configure switch of its own in this version.
	-DWOLFSSL_ALT_NAMES
	# The two parts of the compatibility layer atoll used --enable-opensslall
	# for, both gated on OPENSSL_ALL || WOLFSSL_NGINX (among others) in this
	# version, and both under test: the server's ALPN select callback
	# (wolfSSL_CTX_set_alpn_select_cb is not even built with OPENSSL_EXTRA
	# alone) and the client authority names in TLS 1.2's CertificateRequest
	# (wolfSSL_CTX_set_client_CA_list: HAPROXY, which would also give the
	# callback, neither sends nor parses them). WOLFSSL_NGINX costs 344 bytes
	# in each WOLFSSL_X509_NAME (a raw DER copy), two per WOLFSSL_X509: with
	# the patch below only in a peer certificate that is really kept.
	-DWOLFSSL_NGINX
	# Kept from --enable-opensslall so nothing atoll sees changes: OpenSSL's
	# return codes and every certificate name field (subject/issuer strings).
	-DWOLFSSL_ERROR_CODE_OPENSSL -DWOLFSSL_CERT_NAME_ALL
)

# The asm paths pick AVX2/BMI2/ADX at run time via cpuid, so the library still
# runs on any x86-64 CPU (no -march=native needed).
extra_flags=(
	--enable-intelasm --enable-aesni --enable-sp --enable-sp-asm
	--disable-examples --disable-crypttests
	--disable-dependency-tracking
)

# --- atoll's patch -------------------------------------------------------------
# With the compatibility layer (OPENSSL_EXTRA forces KEEP_PEER_CERT) every
# WOLFSSL object embeds a whole WOLFSSL_X509 for the peer's certificate,
# 4,312 of its 5,808 bytes, in every connection, whether or not the peer ever
# sends a certificate (a server without client authentication: never). The
# patch makes it a pointer, allocated when a peer certificate is processed
# (GetPeerCertX509) and freed with the object (FreePeerCertX509); every use
# of the member is converted (the compiler flags a missed one: the member's
# type changed) and wolfSSL_get_peer_certificate returns NULL when none
# arrived, as before. WOLFSSL: 5,808 -> 1,504 bytes.
atoll_patch() {
	cat <<'PATCH'
--- a/src/internal.c
+++ b/src/internal.c
@@ -4278,6 +4278,33 @@
     #endif
 }
 
+#ifdef KEEP_PEER_CERT
+/* The peer certificate lives on the heap, allocated when a peer certificate
+ * is processed, not inline in every WOLFSSL object (4.3 KB with the
+ * compatibility layer). Returns NULL when out of memory. */
+WOLFSSL_X509* GetPeerCertX509(WOLFSSL* ssl)
+{
+    if (ssl->peerCert == NULL) {
+        WOLFSSL_X509* x509 = (WOLFSSL_X509*)XMALLOC(sizeof(WOLFSSL_X509),
+                                                 ssl->heap, DYNAMIC_TYPE_X509);
+        if (x509 == NULL)
+            return NULL;
+        InitX509(x509, 0, ssl->heap);
+        ssl->peerCert = x509;
+    }
+    return ssl->peerCert;
+}
+
+void FreePeerCertX509(WOLFSSL* ssl)
+{
+    if (ssl->peerCert != NULL) {
+        FreeX509(ssl->peerCert);
+        XFREE(ssl->peerCert, ssl->heap, DYNAMIC_TYPE_X509);
+        ssl->peerCert = NULL;
+    }
+}
+#endif /* KEEP_PEER_CERT */
+
 
 #if !defined(NO_WOLFSSL_SERVER) || !defined(NO_WOLFSSL_CLIENT)
 #if !defined(WOLFSSL_NO_TLS12)
@@ -6714,7 +6741,7 @@
     ssl->buffers.outputBuffer.bufferSize  = STATIC_BUFFER_LEN;
 
 #ifdef KEEP_PEER_CERT
-    InitX509(&ssl->peerCert, 0, ssl->heap);
+    ssl->peerCert = NULL; /* GetPeerCertX509() allocates it when needed */
 #endif
 
     ssl->rfd = -1;   /* set to invalid descriptor */
@@ -7695,7 +7722,7 @@
         wolfSSL_X509_STORE_free(ssl->x509_store_pt);
 #endif
 #ifdef KEEP_PEER_CERT
-    FreeX509(&ssl->peerCert);
+    FreePeerCertX509(ssl);
 #endif
 
     if (ssl->session != NULL)
@@ -12453,8 +12480,8 @@
     #endif /* defined(OPENSSL_EXTRA) || defined(HAVE_WEBSERVER)*/
     #if defined(OPENSSL_EXTRA) || defined(OPENSSL_EXTRA_X509_SMALL)
         #ifdef KEEP_PEER_CERT
-            if (args->certIdx == 0) {
-                store->current_cert = &ssl->peerCert; /* use existing X509 */
+            if (args->certIdx == 0 && GetPeerCertX509(ssl) != NULL) {
+                store->current_cert = ssl->peerCert; /* use existing X509 */
             }
             else
         #endif
@@ -13918,8 +13945,10 @@
 
                     #ifdef WOLFSSL_POST_HANDSHAKE_AUTH
                         if (ssl->options.handShakeDone) {
-                            FreeX509(&ssl->peerCert);
-                            InitX509(&ssl->peerCert, 0, ssl->heap);
+                            if (ssl->peerCert != NULL) {
+                                FreeX509(ssl->peerCert);
+                                InitX509(ssl->peerCert, 0, ssl->heap);
+                            }
                         }
                         else
                     #endif
@@ -13927,8 +13956,10 @@
                         if (ssl->secure_renegotiation &&
                                            ssl->secure_renegotiation->enabled) {
                             /* free old peer cert */
-                            FreeX509(&ssl->peerCert);
-                            InitX509(&ssl->peerCert, 0, ssl->heap);
+                            if (ssl->peerCert != NULL) {
+                                FreeX509(ssl->peerCert);
+                                InitX509(ssl->peerCert, 0, ssl->heap);
+                            }
                         }
                         else
                     #endif
@@ -13936,7 +13967,11 @@
                         }
 
                     /* set X509 format for peer cert */
-                    copyRet = CopyDecodedToX509(&ssl->peerCert, args->dCert);
+                    if (GetPeerCertX509(ssl) == NULL)
+                        copyRet = MEMORY_E;
+                    else
+                        copyRet = CopyDecodedToX509(ssl->peerCert,
+                                                    args->dCert);
                     if (copyRet == MEMORY_E) {
                         args->fatal = 1;
                     }
--- a/src/ssl.c
+++ b/src/ssl.c
@@ -16857,7 +16857,7 @@
          * wolfSSL_get_peer_certificate so that we don't have to worry about
          * setting up the internal pointer. */
         wolfSSL_X509_free(peerCert);
-        peerCert = (WOLFSSL_X509*)&ssl->peerCert;
+        peerCert = ssl->peerCert;
         chain = wolfSSL_get_peer_cert_chain(ssl);
         if (chain == NULL) {
             WOLFSSL_MSG("wolfSSL_get_peer_cert_chain error");
@@ -19213,8 +19213,7 @@
             return WOLFSSL_FAILURE;
 
 #ifdef KEEP_PEER_CERT
-        FreeX509(&ssl->peerCert);
-        InitX509(&ssl->peerCert, 0, ssl->heap);
+        FreePeerCertX509(ssl);
 #endif
 
 #ifdef WOLFSSL_QUIC
@@ -19578,13 +19577,14 @@
         WOLFSSL_X509* ret = NULL;
         WOLFSSL_ENTER("SSL_get_peer_certificate");
         if (ssl != NULL) {
-            if (ssl->peerCert.issuer.sz)
-                ret = wolfSSL_X509_dup(&ssl->peerCert);
+            if (ssl->peerCert != NULL && ssl->peerCert->issuer.sz)
+                ret = wolfSSL_X509_dup(ssl->peerCert);
 #ifdef SESSION_CERTS
-            else if (ssl->session->chain.count > 0) {
-                if (DecodeToX509(&ssl->peerCert, ssl->session->chain.certs[0].buffer,
+            else if (ssl->session->chain.count > 0 &&
+                     GetPeerCertX509(ssl) != NULL) {
+                if (DecodeToX509(ssl->peerCert, ssl->session->chain.certs[0].buffer,
                         ssl->session->chain.certs[0].length) == 0) {
-                    ret = wolfSSL_X509_dup(&ssl->peerCert);
+                    ret = wolfSSL_X509_dup(ssl->peerCert);
                 }
             }
 #endif
@@ -26489,7 +26489,7 @@
         XFILE          file;
         long           sz        = 0;
         WOLFSSL_CTX*   ctx       = ssl->ctx;
-        WOLFSSL_X509*  peer_cert = &ssl->peerCert;
+        WOLFSSL_X509*  peer_cert = ssl->peerCert;
         DerBuffer*     fileDer = NULL;
 
         file = XFOPEN(fname, "rb");
@@ -26521,6 +26521,7 @@
             (PemToDer(myBuffer, (long)sz, CERT_TYPE,
                       &fileDer, ctx->heap, NULL, NULL) == 0) &&
             (fileDer->length != 0) &&
+            (peer_cert != NULL) && (peer_cert->derCert != NULL) &&
             (fileDer->length == peer_cert->derCert->length) &&
             (XMEMCMP(peer_cert->derCert->buffer, fileDer->buffer,
                                                 fileDer->length) == 0))
--- a/wolfssl/internal.h
+++ b/wolfssl/internal.h
@@ -5115,7 +5115,7 @@
 #ifdef KEEP_PEER_CERT
     /* TODO put this on the heap so we can properly use the
      * reference counter and not have to duplicate it. */
-    WOLFSSL_X509     peerCert;           /* X509 peer cert */
+    WOLFSSL_X509*    peerCert;           /* X509 peer cert, on the heap */
 #endif
 #ifdef KEEP_OUR_CERT
     WOLFSSL_X509*    ourCert;            /* keep alive a X509 struct of cert.
@@ -5728,6 +5728,10 @@
     WOLFSSL_LOCAL void InitX509(WOLFSSL_X509* x509, int dynamicFlag,
                                 void* heap);
     WOLFSSL_LOCAL void FreeX509(WOLFSSL_X509* x509);
+#ifdef KEEP_PEER_CERT
+    WOLFSSL_LOCAL WOLFSSL_X509* GetPeerCertX509(WOLFSSL* ssl);
+    WOLFSSL_LOCAL void FreePeerCertX509(WOLFSSL* ssl);
+#endif
     WOLFSSL_LOCAL int  CopyDecodedToX509(WOLFSSL_X509* x509,
                                          DecodedCert* dCert);
 #endif
PATCH
}

# --- atoll's conformance patch -----------------------------------------------
# What TLS scanners (sslscan, testssl.sh) and tests/test_tls_conformance.sh
# found in 5.5.4's server side, each fixed where wolfSSL decides it
# (docs/reliability.md, "TLS conformance"; Debian's system build still does
# the old thing):
#  - a ClientHello listing more than 150 cipher suites (WOLFSSL_MAX_SUITE_SZ)
#    failed with decode_error; now the suites this server has are kept from
#    a longer list (reported upstream as wolfSSL issue #6408; a larger
#    WOLFSSL_MAX_SUITE_SZ would grow every connection's suite list instead);
#  - TLS 1.3 with no group in common got a HelloRetryRequest naming no group
#    (which changes nothing) instead of handshake_failure (RFC 8446 4.1.1;
#    upstream PR #11253);
#  - an X25519 key share with bit 255 set, half of all random ones, was
#    refused without an alert instead of masked (RFC 7748 5; upstream PRs
#    #10713 and #11283);
#  - TLS 1.2 ECDHE went ahead on a curve the client never offered when none
#    of its curves was the server's, also when wolfSSL knows none of them
#    (RFC 8422 5.1; upstream PR #8805);
#  - TLS 1.2 with a required client certificate that did not come closed the
#    connection with no alert instead of handshake_failure (RFC 5246 7.4.6);
#  - a handshake message longer than wolfSSL takes (MAX_HANDSHAKE_SZ, about
#    18 KB) closed the connection with no alert instead of decode_error.
# Applied after atoll_patch (its line numbers follow that one).
atoll_conformance_patch() {
	cat <<'PATCH'
--- a/wolfssl/internal.h
+++ b/wolfssl/internal.h
@@ -2144,6 +2144,8 @@
                               word16 haveAnon, word16 haveNull, int side);
 
 WOLFSSL_LOCAL int  MatchSuite(WOLFSSL* ssl, Suites* peerSuites);
+WOLFSSL_LOCAL void CopyClientSuites(WOLFSSL* ssl, Suites* cl, const byte* in,
+                                    word16 sz);
 WOLFSSL_LOCAL int  SetCipherList(WOLFSSL_CTX* ctx, Suites* suites,
                                  const char* list);
 WOLFSSL_LOCAL int  SetCipherListFromBytes(WOLFSSL_CTX* ctx, Suites* suites,
--- a/src/internal.c
+++ b/src/internal.c
@@ -15907,6 +15907,9 @@
         if (size > MAX_HANDSHAKE_SZ) {
             WOLFSSL_MSG("Handshake message too large");
             WOLFSSL_ERROR_VERBOSE(HANDSHAKE_SIZE_ERROR);
+            /* A length out of range is decode_error (RFC 8446 6.2), not
+             * a close without an alert. */
+            SendAlert(ssl, alert_fatal, decode_error);
             return HANDSHAKE_SIZE_ERROR;
         }
 
@@ -32568,6 +32571,42 @@
         return MATCH_SUITE_ERROR;
     }
 
+    /* A ClientHello may list up to 32,767 suites; scanners send a few
+     * hundred. Past WOLFSSL_MAX_SUITE_SZ keep, in the client's order, those
+     * this side has and the two SCSVs (looked up later) instead of failing
+     * with decode_error (wolfSSL issue #6408). With none kept, one is: no
+     * common suite is handshake_failure, as for a short list. */
+    void CopyClientSuites(WOLFSSL* ssl, Suites* cl, const byte* in, word16 sz)
+    {
+        word16 i, j;
+        int keep;
+
+        if (sz <= WOLFSSL_MAX_SUITE_SZ) {
+            XMEMCPY(cl->suites, in, sz);
+            cl->suiteSz = sz;
+            return;
+        }
+        cl->suiteSz = 0;
+        for (i = 0; i + 1 < sz && cl->suiteSz < WOLFSSL_MAX_SUITE_SZ;
+             i += SUITE_LEN) {
+            keep = (in[i] == 0 && in[i+1] == TLS_EMPTY_RENEGOTIATION_INFO_SCSV)
+                || (in[i] == TLS_FALLBACK_SCSV && in[i+1] == 0);
+            for (j = 0; !keep && ssl->suites != NULL &&
+                        j < ssl->suites->suiteSz; j += SUITE_LEN) {
+                keep = ssl->suites->suites[j] == in[i] &&
+                       ssl->suites->suites[j+1] == in[i+1];
+            }
+            if (keep) {
+                cl->suites[cl->suiteSz++] = in[i];
+                cl->suites[cl->suiteSz++] = in[i+1];
+            }
+        }
+        if (cl->suiteSz == 0) {
+            XMEMCPY(cl->suites, in, SUITE_LEN);
+            cl->suiteSz = SUITE_LEN;
+        }
+    }
+
     int MatchSuite(WOLFSSL* ssl, Suites* peerSuites)
     {
         int ret;
@@ -33270,12 +33309,10 @@
             goto out;
         }
 
-        if (clSuites->suiteSz > WOLFSSL_MAX_SUITE_SZ) {
-            ret = BUFFER_ERROR;
-            goto out;
-        }
-
-        XMEMCPY(clSuites->suites, input + i, clSuites->suiteSz);
+        /* Past the whole list: CopyClientSuites may keep fewer. */
+        i += clSuites->suiteSz;
+        CopyClientSuites(ssl, clSuites, input + i - clSuites->suiteSz,
+                         clSuites->suiteSz);
 
 #ifdef HAVE_SERVER_RENEGOTIATION_INFO
         /* check for TLS_EMPTY_RENEGOTIATION_INFO_SCSV suite */
@@ -33308,7 +33345,6 @@
         }
 #endif
 
-        i += clSuites->suiteSz;
         clSuites->hashSigAlgoSz = 0;
 
         /* compression length */
@@ -35345,10 +35381,14 @@
                 }
 
             #if !defined(NO_CERTS) && !defined(WOLFSSL_NO_CLIENT_AUTH)
+                /* A required certificate that did not come: TLS 1.2 has
+                 * handshake_failure for it (RFC 5246 7.4.6); without it the
+                 * connection closed with no alert. */
                 if (ssl->options.verifyPeer &&
                          (ssl->options.mutualAuth || ssl->options.failNoCert)) {
                     if (!ssl->options.havePeerCert) {
                         WOLFSSL_MSG("client didn't present peer cert");
+                        SendAlert(ssl, alert_fatal, handshake_failure);
                         ERROR_OUT(NO_PEER_CERT, exit_dcke);
                     }
                 }
@@ -35357,6 +35397,7 @@
                     if (!ssl->options.havePeerCert &&
                                              !ssl->options.usingPSK_cipher) {
                         WOLFSSL_MSG("client didn't present peer cert");
+                        SendAlert(ssl, alert_fatal, handshake_failure);
                         ERROR_OUT(NO_PEER_CERT, exit_dcke);
                     }
                 }
@@ -35624,6 +35665,11 @@
                                 }
                             }
 
+                            /* RFC 7748 5: mask bit 255 (the message is
+                             * already in the transcript hash). As upstream
+                             * wolfSSL PR #11283. */
+                            if (args->length == CURVE25519_KEYSIZE)
+                                input[args->idx + CURVE25519_KEYSIZE - 1] &= 0x7f;
                             if ((ret = wc_curve25519_check_public(
                                     input + args->idx, args->length,
                                     EC25519_LITTLE_ENDIAN)) != 0) {
--- a/src/tls.c
+++ b/src/tls.c
@@ -4149,6 +4149,13 @@
         }
     }
 
+    /* A list of groups none of which is known here still rules out TLS 1.2
+     * ECDHE (RFC 8422 5.1): keep the extension, empty, instead of none,
+     * which would let the server pick any curve. */
+    if (isRequest && TLSX_Find(ssl->extensions, TLSX_SUPPORTED_GROUPS) == NULL)
+        return TLSX_Push(&ssl->extensions, TLSX_SUPPORTED_GROUPS, NULL,
+                         ssl->heap);
+
     return 0;
 }
 
@@ -4512,6 +4519,7 @@
     int             ephmSuite = 0;
     word16          octets    = 0; /* according to 'ecc_set_type ecc_sets[];' */
     int             key       = 0; /* validate key       */
+    int             common    = 0; /* a curve both sides have */
 
     (void)oid;
 
@@ -4667,6 +4675,7 @@
 #endif
             default: continue; /* unsupported curve */
         }
+        common = 1;
 
     #ifdef HAVE_ECC
         /* Set default Oid */
@@ -4836,6 +4845,12 @@
     /* No curve and ephemeral ECC suite requires a matching curve. */
     if (ssl->ecdhCurveOID == 0 && ephmSuite)
         key = 0;
+    /* None of the client's curves is ours: not an ECDHE suite, rather than
+     * one on a curve the client never offered (RFC 8422 5.1; the case of
+     * upstream wolfSSL PR #8805). */
+    if (!common && XSTRNCMP(GetCipherNameInternal(first, second), "ECDHE-",
+                            6) == 0)
+        key = 0;
 
     return key;
 }
@@ -7623,6 +7638,11 @@
     WOLFSSL_BUFFER(keyShareEntry->ke, keyShareEntry->keLen);
 #endif
 
+    /* RFC 7748 5: the receiver masks bit 255 of the u-coordinate; a random
+     * share has it set half the time. As upstream wolfSSL PR #11283. */
+    if (keyShareEntry->ke != NULL && keyShareEntry->keLen == CURVE25519_KEYSIZE)
+        keyShareEntry->ke[CURVE25519_KEYSIZE - 1] &= 0x7f;
+
     if (wc_curve25519_check_public(keyShareEntry->ke, keyShareEntry->keLen,
                                                   EC25519_LITTLE_ENDIAN) != 0) {
         ret = ECC_PEERKEY_ERROR;
@@ -9054,11 +9074,15 @@
     }
     clientKSE = preferredKSE;
 
-    /* No supported group found - send HelloRetryRequest. */
+    /* No usable key share: a HelloRetryRequest may only ask for a group
+     * the client offered (RFC 8446 4.1.4); with none in common the caller
+     * fails the suite and so the handshake with handshake_failure (4.1.1).
+     * As upstream wolfSSL PR #11253. */
     if (clientKSE == NULL) {
-        /* Set KEY_SHARE_ERROR to indicate HelloRetryRequest required. */
-        *doHelloRetry = 1;
-        return TLSX_KeyShare_SetSupported(ssl);
+        ret = TLSX_KeyShare_SetSupported(ssl);
+        if (ret == 0 || ret == WC_PENDING_E)
+            *doHelloRetry = 1;
+        return ret;
     }
 
     list = NULL;
--- a/src/tls13.c
+++ b/src/tls13.c
@@ -6002,10 +6002,11 @@
     /* suites and compression length check */
     if ((args->idx - args->begin) + args->clSuites->suiteSz + OPAQUE8_LEN > helloSz)
         ERROR_OUT(BUFFER_ERROR, exit_dch);
-    if (args->clSuites->suiteSz > WOLFSSL_MAX_SUITE_SZ)
-        ERROR_OUT(BUFFER_ERROR, exit_dch);
-    XMEMCPY(args->clSuites->suites, input + args->idx, args->clSuites->suiteSz);
+    /* Past the whole list: CopyClientSuites may keep fewer. */
     args->idx += args->clSuites->suiteSz;
+    CopyClientSuites(ssl, args->clSuites,
+                     input + args->idx - args->clSuites->suiteSz,
+                     args->clSuites->suiteSz);
     args->clSuites->hashSigAlgoSz = 0;
 
     /* Compression */
@@ -6170,6 +6171,8 @@
             if (ret != WC_PENDING_E)
                 ret = 0; /* for hello_retry return 0 */
         }
+        if (ret == BAD_KEY_SHARE_DATA) /* no group in common */
+            SendAlert(ssl, alert_fatal, handshake_failure);
         if (ret != 0)
             goto exit_dch;
     }
@@ -10720,6 +10723,9 @@
         if (size > MAX_HANDSHAKE_SZ) {
             WOLFSSL_MSG("Handshake message too large");
             WOLFSSL_ERROR_VERBOSE(HANDSHAKE_SIZE_ERROR);
+            /* A length out of range is decode_error (RFC 8446 6.2), not
+             * a close without an alert. */
+            SendAlert(ssl, alert_fatal, decode_error);
             return HANDSHAKE_SIZE_ERROR;
         }
 
PATCH
}

# --- atoll's leak patch ----------------------------------------------------------
# Found by tests/test_enomem.c (ENOMEM injected into wolfSSL's allocations,
# under ASan): when generating the server's key share fails,
# TLSX_KeyShare_Establish returns without freeing the entry it just made
# (72 bytes and its key buffers, per failed handshake). The entry is not
# linked anywhere yet, so it is freed before the return. No upstream
# change found for 5.5.4 in this session; Debian's system build still
# leaks it (docs/reliability.md, "Exhaustion"). Applied after the
# conformance patch (its line numbers follow that one).
atoll_leak_patch() {
	cat <<'PATCH'
--- a/src/tls.c
+++ b/src/tls.c
@@ -9115,6 +9115,8 @@
             && ret != WC_PENDING_E
         #endif
         ) {
+            /* The new entry is not linked anywhere yet: free it. */
+            TLSX_KeyShare_FreeAll(list, ssl->heap);
             return ret;
         }
     }
PATCH
}

# atoll's patches in the order they apply (each one's line numbers follow
# the ones before it), and what each is for.
patches=(atoll_patch atoll_conformance_patch atoll_leak_patch)
declare -A patch_about=(
	[atoll_patch]="peer certificate on the heap"
	[atoll_conformance_patch]="alerts and negotiation scanners probe"
	[atoll_leak_patch]="a key share freed when its key generation fails"
)

# The configuration a prefix was built with, recorded in its stamp: a prefix
# with another one (older flags or patch) is rebuilt, never taken silently.
# Debian's own compiler flags follow the version, already part of the path.
config_id=$(
	{
		printf '%s\n' "version=$version" "arch=$arch"
		printf '%s\n' "${atoll_flags[@]}" -- "${atoll_cppflags[@]}" -- "${extra_flags[@]}" --
		for p in "${patches[@]}"; do "$p"; done
	} | sha256sum | cut -d' ' -f1
)

# An epoch ("1:...") would put a ':' into the path, which breaks rpath and
# PKG_CONFIG_PATH lists; wolfssl has no epoch today, but be safe.
# "-atoll" names the feature set: a prefix built with other flags (an older
# checkout's distro build) is never taken for this one; the stamp's config=
# line (config_id above) tells apart the configurations of this script.
prefix="$repo/.deps/wolfssl-${version//:/_}-atoll"
logfile="$prefix.log"
stamp="$prefix/.built"

is_built() {
	[[ -f $stamp && -e $prefix/lib/libwolfssl.so && -e $prefix/lib/libwolfssl.a ]] &&
		grep -qxF "config=$config_id" "$stamp"
}

if is_built; then
	log "optimized build present at $prefix"
	exit 0
fi
if [[ -f $stamp ]]; then
	log "$prefix was built with another configuration; rebuilding it (rebuild the build trees afterwards)"
fi

# Serialize concurrent invocations (e.g. two build trees configuring at once)
# so they do not install into the same prefix simultaneously.
mkdir -p "$repo/.deps"
exec 9>"$repo/.deps/.wolfssl.lock"
if ! flock -n 9; then
	log "another build is running; waiting for it"
	flock 9
fi
if is_built; then
	log "optimized build present at $prefix"
	exit 0
fi

# Fail early with a useful message rather than half-way through the build.
need=()
for tool in apt-get apt-config dpkg-source dpkg-buildflags gcc make \
	autoreconf automake libtoolize flock patch sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
((${#need[@]} == 0)) ||
	die "missing tools: ${need[*]} (run scripts/deps.sh to install them)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atoll-wolfssl.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
# apt downloads as the unprivileged "_apt" user when run as root; it must be
# able to traverse the temp dir or apt warns and downloads unsandboxed.
chmod 0755 "$tmp"

: >"$logfile"
# Run a step with its output in the log; on failure show the log's tail.
run() {
	printf '\n+ %s\n' "$*" >>"$logfile"
	if ! "$@" >>"$logfile" 2>&1; then
		printf 'wolfssl: error: step failed: %s\n' "$*" >&2
		printf 'wolfssl: last 40 lines of %s:\n' "$logfile" >&2
		tail -n 40 "$logfile" >&2
		exit 1
	fi
}

log "building wolfSSL $version (log: $logfile)"
started=$SECONDS

# --- private apt configuration --------------------------------------------
# deb-src entries are derived from the machine's own "deb" entries, so the
# same mirrors (and keyrings) are used. Both formats are handled:
#  - one-line format (sources.list, *.list): "deb [opts] uri suite comps"
#  - deb822 (*.sources): stanzas copied with "Types:" rewritten to deb-src,
#    which keeps Signed-By (even an inline key) and all other fields intact.
# Files whose name contains ".disabled" are ignored.
mkdir -p "$tmp/apt/sources.list.d" "$tmp/apt/lists/partial" \
	"$tmp/apt/cache/archives/partial"
sys_list=/etc/apt/sources.list
sys_parts=/etc/apt/sources.list.d/
# Honour the machine's Dir::Etc settings rather than assuming the defaults.
apt_dirs=$(apt-config shell sys_list Dir::Etc::sourcelist/f sys_parts Dir::Etc::sourceparts/d)
eval "$apt_dirs"

oneline_to_src() {
	sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$1"
}

deb822_to_src() {
	# RS="" puts awk in paragraph mode: one deb822 stanza per record.
	awk '
	BEGIN { RS = ""; FS = "\n" }
	{
		out = ""; keep = 0; enabled = 1
		for (i = 1; i <= NF; i++) {
			line = $i
			if (line ~ /^#/) continue
			low = tolower(line)
			if (low ~ /^types:/) {
				if (low ~ /[:[:space:]]deb([[:space:]]|$)/) keep = 1
				line = "Types: deb-src"
			} else if (low ~ /^enabled:[[:space:]]*no/) {
				enabled = 0
			}
			out = out line "\n"
		}
		if (keep && enabled) printf "%s\n", out
	}' "$1"
}

shopt -s nullglob
{
	if [[ -f $sys_list ]]; then oneline_to_src "$sys_list"; fi
	for f in "$sys_parts"*.list; do
		[[ $f == *.disabled* ]] || oneline_to_src "$f"
	done
} >"$tmp/apt/sources.list"
for f in "$sys_parts"*.sources; do
	[[ $f == *.disabled* ]] || deb822_to_src "$f"
done >"$tmp/apt/sources.list.d/derived.sources"
shopt -u nullglob
[[ -s $tmp/apt/sources.list || -s $tmp/apt/sources.list.d/derived.sources ]] ||
	die "no 'deb' entries found in $sys_list or $sys_parts to derive deb-src from"
{
	echo "# private deb-src configuration"
	cat "$tmp/apt/sources.list" "$tmp/apt/sources.list.d/derived.sources"
} >>"$logfile"

apt_opts=(
	-o "Dir::Etc::SourceList=$tmp/apt/sources.list"
	-o "Dir::Etc::SourceParts=$tmp/apt/sources.list.d"
	-o "Dir::State::Lists=$tmp/apt/lists"
	# Keep the package caches (pkgcache.bin, srcpkgcache.bin) private too, so
	# the system's cache never references our temporary lists.
	-o "Dir::Cache=$tmp/apt/cache"
)

log "fetching Debian source package wolfssl=$version"
run apt-get "${apt_opts[@]}" update
mkdir "$tmp/src"
if ((EUID == 0)) && id _apt >/dev/null 2>&1; then
	chown _apt "$tmp/src"
fi
(cd "$tmp/src" && run apt-get "${apt_opts[@]}" source --download-only "wolfssl=$version")

dsc=("$tmp"/src/wolfssl_*.dsc)
[[ -f ${dsc[0]} ]] || die "apt-get source produced no .dsc"
# dpkg-source verifies checksums and applies debian/patches (the security
# fixes). apt has already verified the files against the signed Release file.
run dpkg-source -x "${dsc[0]}" "$tmp/wolfssl"
cd "$tmp/wolfssl"
for p in "${patches[@]}"; do
	log "applying $p (${patch_about[$p]})"
	"$p" >"$tmp/$p.patch"
	run patch -p1 --forward --no-backup-if-mismatch -i "$tmp/$p.patch"
done

# Debian also builds with dpkg-buildflags (hardening=+all per debian/rules);
# use the same compiler flags so only the asm options differ.
maint_opts=$(sed -nE 's/^[[:space:]]*export[[:space:]]+DEB_BUILD_MAINT_OPTIONS[[:space:]]*[:?]?=[[:space:]]*//p' debian/rules | head -n 1)
buildflag() { DEB_BUILD_MAINT_OPTIONS=$maint_opts dpkg-buildflags --get "$1"; }
cflags=$(buildflag CFLAGS)
cppflags=$(buildflag CPPFLAGS)
ldflags=$(buildflag LDFLAGS)

if [[ ! -x configure ]]; then
	# Debian's source ships no generated configure (dh_autoreconf makes it).
	log "running autogen.sh"
	run ./autogen.sh
fi

log "configuring: ${atoll_flags[*]} ${extra_flags[*]}"
run ./configure --prefix="$prefix" --libdir="$prefix/lib" \
	"${atoll_flags[@]}" "${extra_flags[@]}" \
	CFLAGS="$cflags" CPPFLAGS="$cppflags ${atoll_cppflags[*]}" LDFLAGS="$ldflags"
# autoconf only warns about options it does not know; surface that.
unrecognized=$(grep -m 1 'unrecognized options' "$logfile" || true)
if [[ -n $unrecognized ]]; then
	log "warning: $unrecognized"
fi

jobs=$(nproc 2>/dev/null || echo 2)
log "compiling with make -j$jobs"
run make -j"$jobs"

# Replace any half-installed previous attempt; the stamp is written last, so a
# prefix without a stamp is never trusted.
rm -rf -- "$prefix"
log "installing into $prefix"
run make install
# options.h records the build's feature/asm defines and struct layouts depend
# on it, so consumers must include exactly this one (some configurations do
# not install it).
if [[ ! -f $prefix/include/wolfssl/options.h ]]; then
	install -D -m 0644 wolfssl/options.h "$prefix/include/wolfssl/options.h"
fi
[[ -e $prefix/lib/libwolfssl.so ]] || die "make install produced no $prefix/lib/libwolfssl.so"
[[ -e $prefix/lib/libwolfssl.a ]] || die "make install produced no $prefix/lib/libwolfssl.a"

asm_defines=$(grep -oE '^#define (WOLFSSL_AESNI|USE_INTEL_SPEEDUP|WOLFSSL_SP_X86_64(_ASM)?|WOLFSSL_SP_ASM|WOLFSSL_X86_64_BUILD)\b' \
	"$prefix/include/wolfssl/options.h" | cut -d' ' -f2 | tr '\n' ' ' || true)
[[ $asm_defines == *WOLFSSL_AESNI* ]] ||
	die "options.h lacks WOLFSSL_AESNI; the asm build did not take effect"
# The point of the feature list: no per-connection certificate chains.
! grep -qE '^#define (SESSION_CERTS|WOLFSSL_ALT_CERT_CHAINS)\b' "$prefix/include/wolfssl/options.h" ||
	die "options.h defines SESSION_CERTS or WOLFSSL_ALT_CERT_CHAINS; the feature list did not take effect"

# The server's ALPN callback and client authority names need WOLFSSL_NGINX
# (or OPENSSL_ALL) in options.h, which atoll's sources include too.
grep -qE '^#define (WOLFSSL_NGINX|OPENSSL_ALL)\b' "$prefix/include/wolfssl/options.h" ||
	die "options.h defines neither WOLFSSL_NGINX nor OPENSSL_ALL; ALPN selection and client authority names would not work"

built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
{
	echo "version=$version"
	echo "arch=$arch"
	echo "atoll_flags=${atoll_flags[*]}"
	echo "atoll_cppflags=${atoll_cppflags[*]}"
	for p in "${patches[@]}"; do
		echo "${p}_sha256=$("$p" | sha256sum | cut -d' ' -f1)"
	done
	echo "extra_flags=${extra_flags[*]}"
	echo "cflags=$cflags"
	echo "cppflags=$cppflags"
	echo "ldflags=$ldflags"
	echo "asm_defines=${asm_defines% }"
	echo "built=$built_at"
	echo "config=$config_id"
} >"$stamp.tmp"
mv -- "$stamp.tmp" "$stamp"

log "asm defines: ${asm_defines% }"
log "built in $((SECONDS - started))s; installed at $prefix"
