#!/bin/bash
# install-deps.sh — everything mailshard needs to build, test and run its lab, on Debian 12.
# Run as root. Idempotent: when every package is already installed it does nothing (<1 s).
# Package maintainer scripts must not start the system slapd/dovecot/nginx/node-exporter/postfix
# (they would take 0.0.0.0:389/143/80/9100/25): a temporary policy-rc.d that exits 101 keeps
# them down, unless the machine already has its own policy-rc.d, which is left untouched.
set -euo pipefail

BUILD=(cmake g++ make pkg-config librsync-dev libldap-dev libsqlite3-dev libcurl4-openssl-dev
       libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libxxhash-dev
       libgtest-dev libgmock-dev libbenchmark-dev libpng-dev clang libclang-rt-14-dev ccache)
LAB=(slapd ldap-utils dovecot-core dovecot-imapd dovecot-lmtpd dovecot-ldap dovecot-auth-lua
     nginx libnginx-mod-mail prometheus-node-exporter postfix postfix-ldap perdition perdition-ldap)
TOOLS=(python3 rsync rdiff time procps sqlite3 ca-certificates openssl curl chromium prometheus)
ALL=("${BUILD[@]}" "${LAB[@]}" "${TOOLS[@]}")
POLICY=/usr/sbin/policy-rc.d

case ${1:-} in
  -h|--help)
    echo "usage: install-deps.sh   (as root on Debian 12; installs: ${ALL[*]})"
    exit 0 ;;
  "") ;;
  *) echo "install-deps.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

# Fast path: one dpkg-query for all packages.
missing=()
declare -A installed=()
while read -r name status; do
  [[ $status == "install ok installed" ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${ALL[@]}" 2>/dev/null || true)
for p in "${ALL[@]}"; do [[ -n ${installed[$p]:-} ]] || missing+=("$p"); done
if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#ALL[@]} packages already installed"
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
echo "install-deps.sh: done"
