#!/bin/bash
# auth-http benchmark: `mailshard auth-http` in its own lab (tests/lab/lab.sh on
# LAB_PORT_BASE, default 17000, so it runs beside ctest's lab), against the
# floor of the LDAP work it does. Prints the figures and PASS/FAIL per target;
# exits 1 when a check fails.
#
# Usage: tests/bench/auth_http/run.sh [WORKDIR]
#   env: MAILSHARD=build/mailshard  AUTH_LOAD=build/tests/bench/auth_http/auth_load
#        LAB_PORT_BASE=17000  USERS=1000  SECONDS_EACH=10  CONCURRENCY=32
# Needs root (the lab).
#
# Every user is frozen first: a frozen user costs the responder the whole
# authentication (the LDAP search, the bind as the user, the freeze check) and
# nginx the whole auth_http exchange, but no backend login, so the figures
# measure authentication, not Dovecot. The lab's Auth-Wait is 0 (LAB_AUTH_WAIT)
# so nginx answers at once.
#
# Figure 1  floor: the same LDAP work (search as the service DN on one
#           connection, bind as the user on another) from C threads.
# Figure 2  the responder alone: nginx's auth_http requests, one per connection.
#           Ratio to the floor.
# Figure 3  through nginx: IMAP connect + LOGIN + the NO [UNAVAILABLE] nginx
#           sends from the responder's answer. Target >= 2000/s, p99 <= 20 ms.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/auth-http-bench}
MS=${MAILSHARD:-$REPO/build/mailshard}
AL=${AUTH_LOAD:-$REPO/build/tests/bench/auth_http/auth_load}
BASE=${LAB_PORT_BASE:-17000}
USERS=${USERS:-1000}
SECS=${SECONDS_EACH:-10}
C=${CONCURRENCY:-32}
[ -x "$MS" ] || { echo "no mailshard binary at $MS (build first or set MAILSHARD)" >&2; exit 2; }
[ -x "$AL" ] || { echo "no auth_load at $AL (cmake --build build --target auth_load)" >&2; exit 2; }
LAB=$W/lab
mkdir -p "$W"
stop_lab() { "$REPO/tests/lab/lab.sh" stop "$LAB" >/dev/null 2>&1; }
trap stop_lab EXIT
MAILSHARD_BIN=$MS LAB_AUTH_WAIT=0s LAB_SLAPD_DEBUG=0 LAB_PORT_BASE=$BASE "$REPO/tests/lab/lab.sh" restart "$LAB" \
  >"$W/lab.out" 2>&1 || { cat "$W/lab.out" >&2; exit 2; }
"$REPO/tests/lab/lab.sh" populate "$LAB" --users "$USERS" >/dev/null || exit 2
# shellcheck disable=SC1091
. "$LAB/lab.env"
for i in $(seq -f "%05g" 1 "$USERS"); do
  printf 'dn: uid=user%s,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mailAccountStatus\nmailAccountStatus: frozen\n\n' "$i"
done | ldapmodify -x -H "$LDAP_URI" -D cn=admin,dc=example,dc=org -y "$LAB/secrets/ldap.secret" >/dev/null || exit 2

run() { "$AL" --users "$USERS" --seconds "$SECS" --concurrency "$C" "$@"; }
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
floor=$(run --mode ldap --ldap-uri "$LDAP_URI" --base ou=people,dc=example,dc=org \
  --bind-dn cn=mailshard,dc=example,dc=org --bind-pw-file "$LAB/secrets/mailshard.secret")
direct=$(run --mode http --port "$AUTH_HTTP_PORT")
nginx=$(run --mode imap --port "$NGINX_IMAP_PORT")
echo "floor (LDAP only):   $floor"
echo "auth-http direct:    $direct"
echo "through nginx:       $nginx"
FAIL=0
/usr/bin/python3 - "$floor" "$direct" "$nginx" <<'PY' || FAIL=1
import json, sys
floor, direct, nginx = (json.loads(a) for a in sys.argv[1:4])
print(f"figure 1  floor            {floor['per_second']:>7.0f}/s  p99 {floor['p99_ms']:.1f} ms")
print(f"figure 2  auth-http        {direct['per_second']:>7.0f}/s  p99 {direct['p99_ms']:.1f} ms"
      f"  = {direct['per_second'] / floor['per_second']:.2f} x floor")
ok = nginx["per_second"] >= 2000 and nginx["p99_ms"] <= 20 and nginx["errors"] == 0 and nginx["ok"] == 0
print(f"figure 3  through nginx    {nginx['per_second']:>7.0f}/s  p99 {nginx['p99_ms']:.1f} ms"
      f"  = {nginx['per_second'] / floor['per_second']:.2f} x floor  (target >= 2000/s, p99 <= 20 ms): "
      + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
exit $FAIL
