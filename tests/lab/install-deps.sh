#!/bin/bash
# install-deps.sh — everything mailshard needs to build, test and run its lab, on Debian 12.
# Run as root. Idempotent: when every package is already installed it does nothing (<1 s).
# Package maintainer scripts must not start the system slapd/dovecot/nginx/node-exporter/postfix/
# postgresql (they would take 0.0.0.0:389/143/80/9100/25, 127.0.0.1:5432): a temporary policy-rc.d
# that exits 101 keeps them down, unless the machine already has its own policy-rc.d, which is left
# untouched. (postgresql's package still creates its "15/main" cluster in /var/lib/postgresql; it
# is never started. The lab runs its own, tests/lab/lab.sh.)
set -euo pipefail

BUILD=(cmake g++ make pkg-config librsync-dev libldap-dev libsqlite3-dev libcurl4-openssl-dev
       libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libxxhash-dev
       libgtest-dev libgmock-dev libbenchmark-dev libpng-dev clang libclang-rt-14-dev ccache libpq-dev zlib1g-dev)
LAB=(slapd ldap-utils dovecot-core dovecot-imapd dovecot-lmtpd dovecot-ldap dovecot-auth-lua
     nginx libnginx-mod-mail prometheus-node-exporter postfix postfix-ldap perdition perdition-ldap
     courier-authlib libcourier-unicode4 libgamin0 postgresql)
TOOLS=(python3 rsync rdiff time procps sqlite3 ca-certificates openssl curl chromium prometheus isync)
ALL=("${BUILD[@]}" "${LAB[@]}" "${TOOLS[@]}")
POLICY=/usr/sbin/policy-rc.d

case ${1:-} in
  -h|--help)
    echo "usage: install-deps.sh   (as root on Debian 12; installs: ${ALL[*]})"
    exit 0 ;;
  "") ;;
  *) echo "install-deps.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

# Courier-IMAP's imapd for the lab's Courier stores, extracted, never installed: the package
# conflicts with dovecot-imapd (both provide imap-server) and would remove it. Its libraries
# (courier-authlib, libcourier-unicode4, libgamin0 above) install without conflict.
COURIER_DIR=/opt/mailshard-lab/courier-imap
extract_courier() {
  [[ -x $COURIER_DIR/usr/bin/imapd ]] && return 0
  ((EUID == 0)) || { echo "install-deps.sh: must run as root to extract courier-imap into $COURIER_DIR" >&2; exit 1; }
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root courier-imap >/dev/null) ||
    { rm -rf "$tmp"; echo "install-deps.sh: apt-get download courier-imap failed" >&2; exit 1; }
  rm -rf "$COURIER_DIR.new" && mkdir -p "$COURIER_DIR.new"
  dpkg-deb -x "$tmp"/courier-imap_*.deb "$COURIER_DIR.new"
  rm -rf "$tmp" "$COURIER_DIR" && mv "$COURIER_DIR.new" "$COURIER_DIR"
  echo "install-deps.sh: courier-imap extracted into $COURIER_DIR"
}

# Fast path: one dpkg-query for all packages.
missing=()
declare -A installed=()
while read -r name status; do
  [[ $status == "install ok installed" ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${ALL[@]}" 2>/dev/null || true)
for p in "${ALL[@]}"; do [[ -n ${installed[$p]:-} ]] || missing+=("$p"); done
if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#ALL[@]} packages already installed"
  extract_courier
  exit 0
fi

((EUID == 0)) || { echo "install-deps.sh: must run as root (missing: ${missing[*]})" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "install-deps.sh: apt-get not found (Debian 12 expected)" >&2; exit 1; }
echo "install-deps.sh: installing ${missing[*]}"

if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\n# temporary, from mailshard tests/lab/install-deps.sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  trap 'rm -f "$POLICY"' EXIT
  trap 'exit 130' INT TERM HUP
fi

export DEBIAN_FRONTEND=noninteractive
echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
# No system Postfix: "No configuration" leaves /etc/postfix/main.cf unwritten, so even if a
# service manager started it, the system instance has nothing to listen on. The lab runs its
# own instance from DIR/postfix/etc (lab.sh).
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get update
apt-get install -y --no-install-recommends "${ALL[@]}"
extract_courier
echo "install-deps.sh: done"
