#!/usr/bin/env bash
# make-certs.sh OUTDIR - test certificates for the TLS suites (openssl CLI).
#
# All keys are ECDSA P-256, all certificates valid for 10 years:
#   rootauthority -> intermediateauthority -> localhost   (server)
#   clientauthority -> user1                              (client)
#   untrusted (self-signed, trusted by nobody)
# Files: server_chain.pem (leaf + intermediate), server_key.pem,
# server_key_encrypted.pem (PKCS#8, AES-256-CBC, password "dartdart"),
# server_key_encrypted_trad.pem (traditional "Proc-Type: 4,ENCRYPTED"),
# server_key_encrypted.der (PKCS#8, AES-256-CBC, DER),
# server_cert.pem/.der, server_key.der, trusted_certs.pem (root),
# intermediate_cert.pem, client_authority.pem, client1.pem,
# client1_key.pem, untrusted_chain.pem, untrusted_key.pem.
#
# Idempotent: does nothing when OUTDIR/.done holds this script's layout
# version (bump it when the set of files changes). Builds in a temporary
# directory and renames it into place, so a run interrupted halfway (or two
# ctest runs racing) never leaves a half-made OUTDIR behind.
set -euo pipefail

out=$(realpath -m -- "${1:?usage: make-certs.sh OUTDIR}")
layout=2
[[ -e $out/.done && $(<"$out/.done") == "$layout" ]] && exit 0

command -v openssl >/dev/null || {
	echo "make-certs: openssl CLI not found (apt-get install openssl)" >&2
	exit 1
}

mkdir -p "$(dirname -- "$out")"
work=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
chmod 755 "$work"
cd "$work"

days=3650
password=dartdart

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME KEY OUT: a self-signed CA certificate.
ca() {
	openssl req -new -x509 -sha256 -days "$days" -key "$2" -subj "/CN=$1" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign \
		-addext subjectKeyIdentifier=hash -out "$3"
}

# sign CN KEY ISSUER_CERT ISSUER_KEY EXTFILE OUT: a certificate issued by ISSUER.
sign() {
	openssl req -new -sha256 -key "$2" -subj "/CN=$1" -out "$1.csr"
	openssl x509 -req -sha256 -days "$days" -in "$1.csr" -CA "$3" -CAkey "$4" \
		-set_serial "0x$(openssl rand -hex 8)" -extfile "$5" -out "$6" 2>/dev/null
}

cat >intermediate.ext <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cat >server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cat >client.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# Server side: root -> intermediate -> localhost.
key root_key.pem
ca rootauthority root_key.pem trusted_certs.pem
key intermediate_key.pem
sign intermediateauthority intermediate_key.pem trusted_certs.pem root_key.pem intermediate.ext intermediate_cert.pem
key server_key.pem
sign localhost server_key.pem intermediate_cert.pem intermediate_key.pem server.ext server_cert.pem
cat server_cert.pem intermediate_cert.pem >server_chain.pem
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$password" -in server_key.pem -out server_key_encrypted.pem
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$password" -in server_key.pem -outform DER \
	-out server_key_encrypted.der
openssl ec -aes-256-cbc -passout "pass:$password" -in server_key.pem -out server_key_encrypted_trad.pem 2>/dev/null
openssl x509 -in server_cert.pem -outform DER -out server_cert.der
openssl pkey -in server_key.pem -outform DER -out server_key.der

# Client side: clientauthority -> user1.
key client_authority_key.pem
ca clientauthority client_authority_key.pem client_authority.pem
key client1_key.pem
sign user1 client1_key.pem client_authority.pem client_authority_key.pem client.ext client1.pem

# A chain nobody trusts.
key untrusted_key.pem
openssl req -new -x509 -sha256 -days "$days" -key untrusted_key.pem -subj "/CN=untrusted" \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -out untrusted_chain.pem

rm -f ./*.csr ./*.ext ./*.srl
chmod 644 ./*
echo "$layout" >.done

# Another run may have finished first: keep its directory. Anything else
# there is an older layout or a leftover.
if [[ -e $out && ! (-e $out/.done && $(<"$out/.done") == "$layout") ]]; then
	rm -rf -- "$out"
fi
if ! mv -T -- "$work" "$out" 2>/dev/null; then
	[[ -e $out/.done && $(<"$out/.done") == "$layout" ]] || {
		echo "make-certs: cannot create $out" >&2
		exit 1
	}
fi
echo "make-certs: certificates in $out"
