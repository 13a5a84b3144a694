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
# list (below) and the asm options, into a private prefix inside the repo:
#
#   <repo>/.deps/wolfssl-<debian-version>-atoll   (build log: <prefix>.log)
#
# Idempotent: when <prefix>/.built and <prefix>/lib/libwolfssl.so exist it
# reuses them and exits at once. The system apt configuration is never
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

# An epoch ("1:...") would put a ':' into the path, which breaks rpath and
# PKG_CONFIG_PATH lists; wolfssl has no epoch today, but be safe.
# "-atoll" names the feature set: a prefix built with other flags (an older
# checkout's distro build) is never taken for this one.
prefix="$repo/.deps/wolfssl-${version//:/_}-atoll"
logfile="$prefix.log"
stamp="$prefix/.built"

is_built() { [[ -f $stamp && -e $prefix/lib/libwolfssl.so ]]; }

if is_built; then
	log "optimized build present at $prefix"
	exit 0
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
	autoreconf automake libtoolize flock; do
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

# --- configure flags ---------------------------------------------------------
# Not Debian's --enable-distro (everything on): the features atoll calls, each
# for a reason. tests/ exercise every one of them against this build (the
# release preset) and against Debian's full build (the sanitizer presets).
atoll_flags=(
	--enable-shared --disable-static
	--enable-tls13 --disable-oldtls         # TLS 1.2 and 1.3 only
	--enable-opensslextra --enable-opensslall # X509/ASN1_TIME/stack calls, get1_session, alpn_select_cb
	--enable-alpn --enable-sni --enable-supportedcurves
	--enable-session-ticket                 # server tickets (atoll's key callback), client resumption
	--enable-curve25519 --enable-ed25519 --enable-chacha --enable-poly1305 --enable-aesgcm
	--enable-certgen --enable-certext --enable-certreq --enable-keygen # atoll-serve's ephemeral certificate
	--enable-pwdbased                       # encrypted private keys (PKCS#8 and traditional PEM)
	--enable-reproducible-build
)
# Subject alternative names in generated certificates (atoll-serve): no
# configure switch of its own in this version.
atoll_cppflags=-DWOLFSSL_ALT_NAMES

# Debian also builds with dpkg-buildflags (hardening=+all per debian/rules);
# use the same compiler flags so only the asm options differ.
maint_opts=$(sed -nE 's/^[[:space:]]*export[[:space:]]+DEB_BUILD_MAINT_OPTIONS[[:space:]]*[:?]?=[[:space:]]*//p' debian/rules | head -n 1)
buildflag() { DEB_BUILD_MAINT_OPTIONS=$maint_opts dpkg-buildflags --get "$1"; }
cflags=$(buildflag CFLAGS)
cppflags=$(buildflag CPPFLAGS)
ldflags=$(buildflag LDFLAGS)

# The asm paths pick AVX2/BMI2/ADX at run time via cpuid, so the library still
# runs on any x86-64 CPU (no -march=native needed).
extra_flags=(
	--enable-intelasm --enable-aesni --enable-sp --enable-sp-asm
	--disable-examples --disable-crypttests
	--disable-dependency-tracking
)

if [[ ! -x configure ]]; then
	# Debian's source ships no generated configure (dh_autoreconf makes it).
	log "running autogen.sh"
	run ./autogen.sh
fi

log "configuring: ${atoll_flags[*]} ${extra_flags[*]}"
run ./configure --prefix="$prefix" --libdir="$prefix/lib" \
	"${atoll_flags[@]}" "${extra_flags[@]}" \
	CFLAGS="$cflags" CPPFLAGS="$cppflags $atoll_cppflags" LDFLAGS="$ldflags"
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

asm_defines=$(grep -oE '^#define (WOLFSSL_AESNI|USE_INTEL_SPEEDUP|WOLFSSL_SP_X86_64(_ASM)?|WOLFSSL_SP_ASM|WOLFSSL_X86_64_BUILD)\b' \
	"$prefix/include/wolfssl/options.h" | cut -d' ' -f2 | tr '\n' ' ' || true)
[[ $asm_defines == *WOLFSSL_AESNI* ]] ||
	die "options.h lacks WOLFSSL_AESNI; the asm build did not take effect"
# The point of the feature list: no per-connection certificate chains.
! grep -qE '^#define (SESSION_CERTS|WOLFSSL_ALT_CERT_CHAINS)\b' "$prefix/include/wolfssl/options.h" ||
	die "options.h defines SESSION_CERTS or WOLFSSL_ALT_CERT_CHAINS; the feature list did not take effect"

built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
{
	echo "version=$version"
	echo "arch=$arch"
	echo "atoll_flags=${atoll_flags[*]}"
	echo "atoll_cppflags=$atoll_cppflags"
	echo "extra_flags=${extra_flags[*]}"
	echo "cflags=$cflags"
	echo "cppflags=$cppflags"
	echo "ldflags=$ldflags"
	echo "asm_defines=${asm_defines% }"
	echo "built=$built_at"
} >"$stamp.tmp"
mv -- "$stamp.tmp" "$stamp"

log "asm defines: ${asm_defines% }"
log "built in $((SECONDS - started))s; installed at $prefix"
