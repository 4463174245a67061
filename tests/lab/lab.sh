#!/bin/bash
# lab.sh — the real mail lab for mailshard's integration tests, on 127.0.0.1.
#
# slapd + three Dovecot stores (Maildir, IMAP, LMTP, doveadm HTTP/TCP) + nginx mail
# proxy with `mailshard auth-http` answering its auth_http + a Dovecot proxy (dproxy) + perdition
# with its parking Dovecot + prometheus-node-exporter + a private Postfix, all started from
# Debian's binaries with configs generated under one directory, plus two Courier-IMAP stores
# (Courier's own imapd behind courier_imaplogin.py, an LDAP login), plus a PostgreSQL server for
# the PostgreSQL journal (initdb into DIR/pg, run as the `postgres` user). Nothing here uses
# the system daemons, /etc/dovecot, /etc/ldap/slapd.d or /var/lib/*.
# See tests/lab/README.md for ports, credentials and the gotchas behind the settings.
set -euo pipefail

LAB_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The routers' configs are generated from the operator examples, so the examples are what runs.
EXAMPLES=$(cd "$LAB_SCRIPTS/../../examples" && pwd)
PY=/usr/bin/python3                       # not `python3`: the PATH one is a slow shim here
# nginx's auth_http responder is `mailshard auth-http` (the production one, reading DIR/mailshard-auth.toml:
# DIR/mailshard.toml plus the Courier stores).
MAILSHARD_BIN=${MAILSHARD_BIN:-$(cd "$LAB_SCRIPTS/../.." && pwd)/build/mailshard}
STORES=(store1 store2 store3)
# Director backends: two Dovecot instances over ONE mail root (the NFS case), behind a Dovecot
# director ring of one. Not in STORES (populate's default round-robin and the default
# mailshard.toml leave them out); DIR/mailshard-director.toml is the config that knows them.
SHARED_STORES=(shared1 shared2)
# Courier-IMAP Maildir++ stores: Courier's own imapd (extracted by install-deps.sh, never
# installed: it would remove dovecot-imapd) serves them, on a pipe (imap_state.py --via courierN)
# or on B+160+N behind courier_imaplogin.py (LDAP login, then imapd on the socket), where nginx
# routes their users; their config is DIR/mailshard-courier.toml.
COURIER_STORES=(courier1 courier2)
COURIER_IMAPD=${LAB_COURIER_IMAPD:-/opt/mailshard-lab/courier-imap/usr/bin/imapd}
DAEMONS=(slapd store1 store2 store3 shared1 shared2 auth_http nginx node_exporter node_exporter_tls postfix
         dproxy perdition_parking perdition director "${COURIER_STORES[@]}" postgres)
# PostgreSQL for the journal's second backend ([journal] url): Debian's server binaries, run as the
# packaged `postgres` user (the server refuses to run as root), never the system cluster.
PG_BIN=${LAB_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_OS_USER=postgres
PERDITION_LDAP_LIB=/usr/lib/x86_64-linux-gnu/libperditiondb_ldap.so.0
POSTFIX_SBIN=/usr/lib/postfix/sbin           # Debian's daemon_directory (master, smtpd, ...)
# Queue retries for the lab, seconds. 1 s as the minimum lets the queue manager take a
# message the retry agent still holds, and Postfix then parks it for 60 s (lab-recipe 18).
POSTFIX_MIN_BACKOFF_S=2
POSTFIX_MAX_BACKOFF_S=3
POSTFIX_QUEUE_RUN_DELAY_S=2
PORT_WAIT_S=20                            # bounded wait for each daemon's port
TERM_WAIT_S=15                            # Dovecot's master lingers after SIGTERM (gotcha 2)
KILL_WAIT_S=5
MARKER=.mailshard-lab                     # marks a directory lab.sh may clean

usage() {
  cat <<'EOF'
usage: lab.sh COMMAND DIR [options]

  start DIR      build a fresh lab under DIR and start every daemon (ports from
                 $LAB_PORT_BASE, default 10000); writes DIR/lab.env, DIR/mailshard.toml
  stop DIR       stop the daemons recorded in DIR/pids (idempotent)
  restart DIR    stop, then start
  status DIR     list each daemon and whether it runs; exit 0 only if all run
  env DIR        print DIR/lab.env
  populate DIR --users N [--first K] [--stores store1,store2,store3] [--domain example.org]
                 add users userNNNNN (password "secret"), mailHost round-robin over --stores

Environment: LAB_PORT_BASE (start), MAILSHARD_BIN (the mailshard binary that answers nginx's
auth_http; default build/mailshard of this checkout), LAB_AUTH_WAIT (its Auth-Wait, default 3s;
the auth benchmark sets 0s so a refused client may retry at once), LAB_SLAPD_DEBUG (slapd -d level, default "stats";
set 0 to keep slapd.out quiet), LAB_QUOTA (Dovecot's per-user storage quota, default 1G;
benchmarks with multi-GB mailboxes raise it).
EOF
}

die() { echo "lab.sh: $*" >&2; exit 1; }

# --- small helpers (no forks in the polling paths: forks are slow on this VM) -------------

# DIR must be absolute-able and free of characters that would need quoting in the
# generated dovecot/nginx/slapd configs.
lab_dir() {
  [[ -n ${1:-} ]] || die "missing DIR argument (try: lab.sh --help)"
  local d=$1
  [[ $d == /* ]] || d=$PWD/$d
  d=${d%/}
  [[ $d =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "lab directory '$d' may contain only letters, digits and ._/+-"
  DIR=$d
}

# alive PID: the process exists and is not a zombie (killed daemons linger as <defunct>
# under PID 1 in this VM, gotcha 3).
alive() {
  local s
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  [[ ${s:0:1} != [ZX] ]]
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() {
  local fd
  { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  exec {fd}>&-
  return 0
}

pid_of() { # NAME -> PID in $REPLY, or fails
  REPLY=
  [[ -r $DIR/pids/$1.pid ]] || return 1
  read -r REPLY <"$DIR/pids/$1.pid" || true
  [[ $REPLY =~ ^[0-9]+$ ]]
}

# start_time PID -> STARTED: the process's start time (clock ticks since boot, /proc/PID/stat
# field 22); with the pid it names one process for good. (Not REPLY: callers hold a pid there.)
start_time() {
  local s
  STARTED=
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ STARTED _ <<<"$s"
  [[ $STARTED =~ ^[0-9]+$ ]]
}

# owned_session PID NAME: PID still is the session leader we started for this lab as NAME
# (guards against a recycled pid in a stale pid file): its start time is the one recorded at
# spawn, or, for a pid file without one, its command line names DIR. (perdition rewrites its
# command line to "perdition.imap4: daemon", so only the start time recognises it.)
owned_session() {
  local s cmd want
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  read -r _ _ _ s _ <<<"$s"
  [[ $s == "$1" ]] || return 1
  if { read -r want <"$DIR/pids/$2.start"; } 2>/dev/null; then
    start_time "$1" && [[ $STARTED == "$want" ]]
    return
  fi
  local -a argv
  { mapfile -d '' argv <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  cmd=" ${argv[*]} "
  [[ $cmd == *"$DIR/"* || $cmd == *" $DIR "* ]]
}

# live_in_sessions SID...: sets LIVE to the non-zombie pids whose session is one of SID.
live_in_sessions() {
  local f s st sid want
  LIVE=()
  for f in /proc/[0-9]*/stat; do
    { read -r s <"$f"; } 2>/dev/null || continue
    s=${s##*) }
    read -r st _ _ sid _ <<<"$s"
    [[ $st == [ZX] ]] && continue
    for want in "$@"; do
      if [[ $sid == "$want" ]]; then
        f=${f#/proc/}; LIVE+=("${f%/stat}"); break
      fi
    done
  done
}

log_tail() { # NAME: show what the daemon said before dying
  local f
  for f in "$DIR/logs/$1".*; do
    [[ -s $f ]] || continue
    echo "--- last lines of $f:" >&2
    tail -n 15 "$f" >&2
  done
}

# --- stop -------------------------------------------------------------------------------------

do_stop() {
  local name sid sids=() names=() deadline
  [[ -d $DIR/pids ]] || return 0
  for name in "${DAEMONS[@]}"; do
    pid_of "$name" || { rm -f "$DIR/pids/$name".{pid,start}; continue; }
    # A dead leader whose session still has members (orphaned children) counts too:
    # Linux does not reuse a pid while it names a live session.
    if alive "$REPLY"; then
      owned_session "$REPLY" "$name" || { echo "lab.sh: $name: pid $REPLY is not ours any more, skipping" >&2
                                          rm -f "$DIR/pids/$name".{pid,start}; continue; }
      kill -TERM "$REPLY" 2>/dev/null || true
    fi
    sids+=("$REPLY"); names+=("$name")
  done
  ((${#sids[@]})) || return 0

  deadline=$((SECONDS + TERM_WAIT_S))
  live_in_sessions "${sids[@]}"
  while ((${#LIVE[@]})) && ((SECONDS < deadline)); do
    sleep 0.05
    live_in_sessions "${sids[@]}"
  done
  if ((${#LIVE[@]})); then
    echo "lab.sh: still running after ${TERM_WAIT_S}s, sending SIGKILL: ${LIVE[*]}" >&2
    for sid in "${sids[@]}"; do kill -KILL -- "-$sid" 2>/dev/null || true; done
    kill -KILL "${LIVE[@]}" 2>/dev/null || true
    deadline=$((SECONDS + KILL_WAIT_S))
    live_in_sessions "${sids[@]}"
    while ((${#LIVE[@]})) && ((SECONDS < deadline)); do
      sleep 0.05
      live_in_sessions "${sids[@]}"
    done
    ((${#LIVE[@]} == 0)) || die "could not stop processes ${LIVE[*]} of lab $DIR"
  fi
  for name in "${names[@]}"; do rm -f "$DIR/pids/$name".{pid,start}; done
}

# --- start ------------------------------------------------------------------------------------

# spawn NAME CMD...: run CMD in the foreground of its own session, logs in DIR/logs/NAME.out.
# bash's background child is not a process-group leader, so setsid execs in place and $!
# is the daemon's own pid.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$DIR/logs/$name.out" 2>&1 &
  echo "$!" >"$DIR/pids/$name.pid"
  if start_time "$!"; then echo "$STARTED" >"$DIR/pids/$name.start"; fi
}

wait_port() { # NAME PORT
  local name=$1 port=$2 pid deadline=$((SECONDS + PORT_WAIT_S))
  pid_of "$name" || die "$name: no pid file"
  pid=$REPLY
  until port_open "$port"; do
    if ! alive "$pid"; then
      log_tail "$name"
      die "$name exited during start (port $port never opened); logs in $DIR/logs/"
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$name"
      die "$name did not open port 127.0.0.1:$port within ${PORT_WAIT_S}s; logs in $DIR/logs/"
    fi
    sleep 0.05
  done
}

set_ports() {
  BASE=${LAB_PORT_BASE:-10000}
  if ! [[ $BASE =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE > 62000)); then
    die "LAB_PORT_BASE='$BASE' must be an integer in 1024..62000"
  fi
  LDAP_PORT=$((BASE + 389)); LDAPS_PORT=$((BASE + 636)); NGINX_PORT=$((BASE + 143))
  AUTH_PORT=$((BASE + 80)); NGINX_POP3_PORT=$((BASE + 110)); NODE_PORT=$((BASE + 100)); NODE_TLS_PORT=$((BASE + 101))
  SMTP_PORT=$((BASE + 25))
  DPROXY_PORT=$((BASE + 144)); PERDITION_PORT=$((BASE + 145))
  # perdition connects to mailHost as a host name, on one port for all stores (as in production,
  # where each store is its own host): each store also listens on 127.1.0.N:ROUTED_PORT, and
  # perdition, alone in a mount namespace, sees a hosts file naming storeN 127.1.0.N.
  ROUTED_PORT=$((BASE + 146)); PARKING_PORT=$((BASE + 147))
  # The director: logins on B+148, its ring port B+149, its doveadm HTTP API B+150. It proxies
  # to each shared backend at 127.2.0.N:B+152 (the director wants backends as IPs, one port).
  DIRECTOR_PORT=$((BASE + 148)); DIRECTOR_RING_PORT=$((BASE + 149)); DIRECTOR_DOVEADM_PORT=$((BASE + 150))
  SHARED_BACKEND_PORT=$((BASE + 152))
  PG_PORT=$((BASE + 432))
}
store_routed_addr() { # STORE-NAME -> REPLY: the store's own loopback address (perdition's or the director's route)
  case $1 in
    shared*) REPLY=127.2.0.${1#shared} ;;
    *) REPLY=127.1.0.${1#store} ;;
  esac
}
store_routed_port() { # STORE-NAME -> REPLY: the port of that address
  case $1 in
    shared*) REPLY=$SHARED_BACKEND_PORT ;;
    *) REPLY=$ROUTED_PORT ;;
  esac
}
store_mail_root() { # STORE-NAME -> REPLY: the shared backends all use one mail root
  case $1 in
    shared*) REPLY=$DIR/shared/mail ;;
    *) REPLY=$DIR/$1/mail ;;
  esac
}
store_port() { # STORE-NAME OFFSET -> REPLY (sharedN counts as store 3+N)
  local n
  case $1 in
    # A Courier store has only IMAP, on B+160+N: 1000 apart like the others they would leave the
    # lab's range (B+25 .. B+5425, tests/run-all.sh).
    courier*) REPLY=$((BASE + 160 + ${1#courier})); return ;;
    shared*) n=$((3 + ${1#shared})) ;;
    *) n=${1#store} ;;
  esac
  REPLY=$((BASE + n * 1000 + $2))
}

# The lab's own CA and a certificate for IP 127.0.0.1 only (slapd and the TLS node exporter) (so ldaps://localhost fails the
# host name check, as it must: libldap checks "localhost" as this machine's FQDN), plus a
# second CA that signed nothing (a wrong CA for tests).
write_tls() {
  local t=$DIR/tls
  mkdir -p "$t"
  (
    cd "$t"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=mailshard lab CA" \
      -keyout ca.key -out ca.pem
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=some other CA" \
      -keyout other-ca.key -out other-ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
      -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext \
      -out server.pem
  ) >>"$DIR/logs/tls.out" 2>&1 || { log_tail tls; die "could not make the lab's TLS certificates (openssl)"; }
  chmod 600 "$t"/*.key
}

write_slapd_conf() {
  mkdir -p "$DIR/ldap/db"
  cp "$LAB_SCRIPTS/mlab.schema" "$DIR/ldap/mlab.schema"
  cat >"$DIR/ldap/slapd.conf" <<EOF
# generated by lab.sh — slapd for the mailshard lab in $DIR
include     /etc/ldap/schema/core.schema
include     /etc/ldap/schema/cosine.schema
include     /etc/ldap/schema/inetorgperson.schema
include     /etc/ldap/schema/nis.schema
include     /etc/ldap/schema/misc.schema
include     $DIR/ldap/mlab.schema
# TLS (ldaps:// on LDAPS_PORT and StartTLS on LDAP_PORT), with the lab's own CA.
TLSCACertificateFile   $DIR/tls/ca.pem
TLSCertificateFile     $DIR/tls/server.pem
TLSCertificateKeyFile  $DIR/tls/server.key
pidfile     $DIR/ldap/slapd.pid
argsfile    $DIR/ldap/slapd.args
modulepath  /usr/lib/ldap
moduleload  back_mdb
# Plain searches stop at 500 entries; the paged-results control lifts it.
sizelimit   size.soft=500 size.hard=500 size.prtotal=unlimited

database    mdb
suffix      "dc=example,dc=org"
rootdn      "cn=admin,dc=example,dc=org"
rootpw      adminsecret
directory   $DIR/ldap/db
maxsize     1073741824
# No fsync per write: 10k adds take ~5 s instead of ~54 s (gotcha 5). Lab only.
dbnosync
index       objectClass eq
index       uid,mail,mailHost,mailAccountStatus eq
# limits is per database: placed above "database mdb" it is silently ignored (gotcha 4).
# Dovecot's user iteration binds as the reader and does not page.
limits      dn.exact="cn=reader,dc=example,dc=org" size=unlimited time=unlimited
# mailshard binds as cn=mailshard (least privilege, docs/operations.md): it reads the
# accounts but not their passwords, and writes only the host, home and freeze attributes.
access to attrs=userPassword
    by dn.exact="cn=reader,dc=example,dc=org" read
    by anonymous auth
    by * none
access to dn.subtree="ou=people,dc=example,dc=org" attrs=mailHost,mailMessageStore,mailAccountStatus
    by dn.exact="cn=mailshard,dc=example,dc=org" write
    by * read
access to *
    by * read
EOF
  chmod 600 "$DIR/ldap/slapd.conf"
}

write_dovecot_conf() { # STORE
  local s=$1 d=$DIR/$1 imap lmtp http tcp routed routed_port root
  store_port "$s" 143; imap=$REPLY
  store_port "$s" 24; lmtp=$REPLY
  store_port "$s" 80; http=$REPLY
  store_port "$s" 425; tcp=$REPLY
  store_routed_addr "$s"; routed=$REPLY
  store_routed_port "$s"; routed_port=$REPLY
  store_mail_root "$s"; root=$REPLY
  mkdir -p "$d/run" "$d/state" "$root"
  chown "$MAIL_UID:$MAIL_GID" "$root"
  chmod 755 "$root"
  cat >"$d/dovecot-ldap.conf.ext" <<EOF
# generated by lab.sh — LDAP passdb/userdb of $s
uris = $LDAP_URI
dn = cn=reader,dc=example,dc=org
dnpass = readersecret
ldap_version = 3
base = ou=people,dc=example,dc=org
scope = onelevel
auth_bind = no
default_pass_scheme = SSHA
pass_filter = (&(objectClass=mlabMailAccount)(mailMessageStore=*)(|(mail=%u)(uid=%u)))
pass_attrs = mail=user, userPassword=password
user_filter = (&(objectClass=mlabMailAccount)(mailMessageStore=*)(|(mail=%u)(uid=%u)))
# mailQuotaRule and mailQuotaBackend (mlab.schema), when the entry has them, are the user's
# quota_rule and quota settings.
user_attrs = mail=user, =home=$root/%{ldap:mailMessageStore}, mailQuotaRule=quota_rule=%$, mailQuotaBackend=quota=%$
iterate_filter = (objectClass=mlabMailAccount)
iterate_attrs = mail=user
EOF
  chown "root:$MAIL_GID" "$d/dovecot-ldap.conf.ext"
  chmod 640 "$d/dovecot-ldap.conf.ext"
  # Users whose index and control files live outside the home (mail_location INDEX=, CONTROL=):
  # a test adds "USER::UID:GID::HOME::userdb_mail=maildir:~/Maildir:INDEX=...:CONTROL=..." lines.
  : >"$d/split-users"
  chmod 644 "$d/split-users"
  # store3's doveadm server runs as the mail user, as an operator may harden it (service doveadm
  # { user = vmail }; kick then needs anvil's socket to be that user's): its imports read the
  # sweep's side copy as that user, and what they write is that user's, not root's.
  local doveadm_user="" anvil=""
  if [[ $s == store3 ]]; then
    doveadm_user="  user = $(id -un "$MAIL_UID")"
    anvil="service anvil {
  unix_listener anvil {
    user = $(id -un "$MAIL_UID")
    mode = 0600
  }
}"
  fi
  cat >"$d/dovecot.conf" <<EOF
# generated by lab.sh — $s of the mailshard lab in $DIR. Standalone: no /etc/dovecot.
instance_name = mlab-$s
base_dir = $d/run
state_dir = $d/state
log_path = $DIR/logs/$s.log
info_log_path = $DIR/logs/$s.log
debug_log_path = $DIR/logs/$s.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A mailHost/status change must count at the very next login.
auth_cache_size = 0
login_trusted_networks = 127.0.0.1/32
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
# Dovecot refuses mail as root (gotcha 1): mail belongs to the packaged dovecot user.
mail_uid = $MAIL_UID
mail_gid = $MAIL_GID
first_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
mail_location = maildir:~/Maildir
# Lab speed; only matters if the machine crashes.
mail_fsync = never
mail_plugins = \$mail_plugins quota
# IMAP ID tells a client (imap_state.py) which store it really landed on.
imap_id_send = name * x-mlab-store $s
doveadm_password = doveadmsecret
doveadm_api_key = doveadmkey
doveadm_port = $tcp

namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
}

passdb {
  driver = ldap
  args = $d/dovecot-ldap.conf.ext
}
# Users listed in split-users (none unless a test adds them) get their mail_location from there;
# everyone else falls through to LDAP.
userdb {
  driver = passwd-file
  args = $d/split-users
}
userdb {
  driver = ldap
  args = $d/dovecot-ldap.conf.ext
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
  # The address perdition (storeN) or the director (sharedN) reaches this store at (see set_ports).
  inet_listener imap_routed {
    address = $routed
    port = $routed_port
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp
  }
}
service doveadm {
$doveadm_user
  inet_listener {
    address = 127.0.0.1
    port = $tcp
  }
  inet_listener http {
    address = 127.0.0.1
    port = $http
  }
}
$anvil
protocol lmtp {
  postmaster_address = postmaster@example.org
}
plugin {
  quota = count:User quota
  quota_rule = *:storage=${LAB_QUOTA:-1G}
  quota_vsizes = yes
}
EOF
  printf '#!/bin/sh\nexec doveadm -c %s "$@"\n' "$d/dovecot.conf" >"$DIR/bin/doveadm-$s"
  chmod 755 "$DIR/bin/doveadm-$s"
}

write_nginx_conf() {
  mkdir -p "$DIR/nginx"
  # The mail {} block is the operator example with the lab's ports.
  from_example nginx/mail.conf "$DIR/nginx/mail.conf" \
    -e "s#auth_http 127.0.0.1:9143/auth;#auth_http 127.0.0.1:$AUTH_PORT/auth;#" \
    -e "s#listen 0.0.0.0:143;#listen 127.0.0.1:$NGINX_PORT;#" \
    -e "s#listen 0.0.0.0:110;#listen 127.0.0.1:$NGINX_POP3_PORT;#" \
    -e "s#server_name imap.example.org;#server_name mlab-nginx;#"
  cat >"$DIR/nginx/nginx.conf" <<EOF
# generated by lab.sh — nginx mail proxy of the mailshard lab in $DIR (no http block)
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
user nobody nogroup;
daemon off;
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/logs/nginx.log info;
events {
  worker_connections 512;
}
include $DIR/nginx/mail.conf;
EOF
}

# from_example SRC DST [SED-ARGS...]: an operator example with the lab's LDAP, paths and
# addresses put in. The example's placeholders must all be gone afterwards: a placeholder left
# means the example changed shape and this function no longer tests it.
from_example() {
  local name=$1 src=$EXAMPLES/$1 dst=$2; shift 2
  [[ -r $src ]] || die "missing operator example $src"
  sed -e "s#ldaps://ldap.example.org#$LDAP_URI#g" \
      -e "s#cn=dovecot-proxy,ou=services,dc=example,dc=org#cn=reader,dc=example,dc=org#g" \
      -e "s#cn=perdition%2cou=services%2cdc=example%2cdc=org#cn=reader%2cdc=example%2cdc=org#g" \
      -e "s#CHANGE-ME#readersecret#g" "$@" "$src" >"$dst"
  if grep -nE 'CHANGE-ME|example\.org;|0\.0\.0\.0:|127\.0\.0\.1:9143/|ldap\.example\.org|parking\.example\.org|192\.0\.2\.|10\.0\.0\.[0-9]|/etc/dovecot' "$dst" >&2; then
    die "$src: the lines above kept an example placeholder (lab.sh's substitutions are out of date)"
  fi
  local mark="#"; [[ $dst == *.lua ]] && mark="--"
  { echo "$mark generated by lab.sh from examples/$name"; cat "$dst"; } >"$dst.tmp" && mv "$dst.tmp" "$dst"
}

# write_front_dovecot_conf DIR NAME PORT INCLUDE WHAT: the lab-only dovecot.conf around an
# operator example (the proxy, the director): paths, logs, the IMAP login listener on PORT, then
# the example's file INCLUDE.
write_front_dovecot_conf() {
  local d=$1 name=$2 port=$3 include=$4 what=$5
  cat >"$d/dovecot.conf" <<EOF
# generated by lab.sh — $what (included below), in the mailshard lab in $DIR
instance_name = mlab-$name
base_dir = $d/run
state_dir = $d/state
log_path = $DIR/logs/$name.log
info_log_path = $DIR/logs/$name.log
debug_log_path = $DIR/logs/$name.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
login_trusted_networks = 127.0.0.1/32
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
auth_verbose = yes
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
!include $d/$include
EOF
}

# The Dovecot proxy ("dproxy") on B+144: examples/dovecot-proxy/ with the lab's LDAP and each
# store's 127.0.0.1 port, included by a lab-only dovecot.conf (paths, listener, logs).
write_dproxy_conf() {
  local d=$DIR/dproxy s n port
  mkdir -p "$d/run" "$d/state"
  from_example dovecot-proxy/dovecot-proxy.conf "$d/dovecot-proxy.conf" -e "s#/etc/dovecot/#$d/#g"
  from_example dovecot-proxy/freeze.lua "$d/freeze.lua"
  from_example dovecot-proxy/ldap-disabled.conf.ext "$d/ldap-disabled.conf.ext"
  from_example dovecot-proxy/ldap-frozen.conf.ext "$d/ldap-frozen.conf.ext"
  for s in "${STORES[@]}"; do
    n=${s#store}; store_port "$s" 143; port=$REPLY
    from_example "dovecot-proxy/ldap-$s.conf.ext" "$d/ldap-$s.conf.ext" \
      -e "s#=host=10\.0\.0\.1$n, =port=143#=host=127.0.0.1, =port=$port#"
  done
  chown "root:$MAIL_GID" "$d"/*.conf.ext
  chmod 640 "$d"/*.conf.ext
  write_front_dovecot_conf "$d" dproxy "$DPROXY_PORT" dovecot-proxy.conf \
    "the Dovecot proxy; its passdbs are examples/dovecot-proxy/dovecot-proxy.conf"
}

# The director on B+148 from examples/dovecot-director/: a ring of one (ring port B+149, doveadm
# HTTP API B+150) whose backends are the shared stores at 127.2.0.N:B+152, included by a
# lab-only dovecot.conf (paths, the login listener, logs).
write_director_conf() {
  local d=$DIR/director s hosts=""
  mkdir -p "$d/run" "$d/state"
  for s in "${SHARED_STORES[@]}"; do store_routed_addr "$s"; hosts+=" $REPLY"; done
  from_example dovecot-director/dovecot-director.conf "$d/dovecot-director.conf" \
    -e "s#^director_servers = 192\.0\.2\.30:9090#director_servers = 127.0.0.1:$DIRECTOR_RING_PORT#" \
    -e "s#^director_mail_servers = 10\.0\.0\.21 10\.0\.0\.22#director_mail_servers =$hosts#" \
    -e "s#address = 192\.0\.2\.30#address = 127.0.0.1#" \
    -e "s#^    port = 9090#    port = $DIRECTOR_RING_PORT#" \
    -e "s#^    port = 8080#    port = $DIRECTOR_DOVEADM_PORT#" \
    -e "s#proxy=y nopassword=y port=143#proxy=y nopassword=y port=$SHARED_BACKEND_PORT#" \
    -e "s#^doveadm_api_key = readersecret#doveadm_api_key = doveadmkey#" \
    -e "s#^doveadm_password = readersecret#doveadm_password = doveadmsecret#"
  write_front_dovecot_conf "$d" director "$DIRECTOR_PORT" dovecot-director.conf \
    "the Dovecot director; the director itself is examples/dovecot-director/dovecot-director.conf"
  printf '#!/bin/sh\nexec doveadm -c %s "$@"\n' "$d/dovecot.conf" >"$DIR/bin/doveadm-director"
  chmod 755 "$DIR/bin/doveadm-director"
}

# perdition on B+145 from examples/perdition/: its LDAP popmap routes by mailHost to
# 127.1.0.N:B+146 (each store's routed listener), and what it does not route goes to the parking
# Dovecot on B+147, which answers NO [UNAVAILABLE].
write_perdition_conf() {
  local d=$DIR/perdition s
  mkdir -p "$d/parking/run" "$d/parking/state"
  from_example perdition/perdition.imap4.conf "$d/perdition.imap4.conf" \
    -e "s#^bind_address 192\.0\.2\.10:143#bind_address 127.0.0.1:$PERDITION_PORT#" \
    -e "s#^outgoing_port 143#outgoing_port $ROUTED_PORT#" \
    -e "s#^outgoing_server parking\.example\.org:143#outgoing_server 127.0.0.1:$PARKING_PORT#"
  chmod 600 "$d/perdition.imap4.conf"
  # mailHost names resolve only inside perdition's own mount namespace (see spawn in do_start).
  {
    echo "# generated by lab.sh — perdition's view of the store names (bind-mounted on /etc/hosts)"
    echo "127.0.0.1 localhost"
    for s in "${STORES[@]}"; do store_routed_addr "$s"; echo "$REPLY $s"; done
  } >"$d/hosts"
  from_example perdition/parking.conf "$d/parking/parking.conf" \
    -e "s#^instance_name = dovecot-parking#instance_name = mlab-perdition-parking#" \
    -e "s#^base_dir = /run/dovecot-parking#base_dir = $d/parking/run#" \
    -e "s#^state_dir = /var/lib/dovecot-parking#state_dir = $d/parking/state#" \
    -e "s#^log_path = syslog#log_path = $DIR/logs/perdition_parking.log#" \
    -e "s#^listen = 192\.0\.2\.20#listen = 127.0.0.1#" \
    -e "s#^login_trusted_networks = 192\.0\.2\.10/32#login_trusted_networks = 127.0.0.1/32#" \
    -e "s#^    port = 143#    port = $PARKING_PORT#" \
    -e "s#/etc/dovecot-parking/#$d/parking/#g"
  from_example perdition/parking.lua "$d/parking/parking.lua"
}

# A private Postfix instance under DIR/postfix: its own config_directory (etc), queue_directory
# (spool) and data_directory (data), smtpd on 127.0.0.1:BASE+25 only, no chroot, log to
# DIR/logs/postfix.log. Routing is the production one from examples/postfix/ with lab paths:
#   transport_maps = frozen users -> retry:  (LDAP; deferred in the queue, never bounced)
#                    else mailHost -> lmtp:[127.0.0.1]:<LMTP port of that store>
# The second is a pipemap: LDAP answers the mailHost value ("store2"), a texthash table turns
# that into the store's LMTP next hop, so the directory needs nothing Postfix-specific.
ldap_cf() { # FILE FILTER RESULT_ATTRIBUTE [RESULT_FORMAT]
  {
    echo "# generated by lab.sh — see examples/postfix/${1##*/}"
    echo "server_host = $LDAP_URI"
    echo "version = 3"
    echo "bind = yes"
    echo "bind_dn = cn=reader,dc=example,dc=org"
    echo "bind_pw = readersecret"
    echo "search_base = ou=people,dc=example,dc=org"
    echo "scope = one"
    echo "timeout = 10"
    echo "domain = example.org"
    echo "query_filter = $2"
    echo "result_attribute = $3"
    [[ -z ${4:-} ]] || echo "result_format = $4"
  } >"$1"
  chown root:postfix "$1"
  chmod 640 "$1"
}

write_postfix_conf() {
  local e=$DIR/postfix/etc s
  [[ -n $DIR && -d $DIR ]] || die "write_postfix_conf: no lab directory"
  mkdir -p "$e" "$DIR/postfix/spool" "$DIR/postfix/data"
  chown postfix "$DIR/postfix/data"
  chmod 700 "$DIR/postfix/data"
  # Postfix 3.x's ldap table has no result cache: a freeze or a flip counts at the next lookup.
  ldap_cf "$e/ldap-recipients.cf" '(&(objectClass=mlabMailAccount)(mail=%s))' mail
  # Frozen: the plain value, or "frozen;" and fields ("frozen;move=42.9f3a1c2b;until=...",
  # [freeze] owner_in_value and until_in_value). An LDAP filter
  # cannot compare the deadline, so a freeze past its deadline still defers here until
  # mailshard (or its freeze guard, or resume) thaws it.
  ldap_cf "$e/ldap-frozen.cf" \
    '(&(objectClass=mlabMailAccount)(mail=%s)(|(mailAccountStatus=frozen)(mailAccountStatus=frozen;*)))' \
    mail 'retry:4.2.1 mailbox is being moved, try again later'
  ldap_cf "$e/ldap-mailhost.cf" '(&(objectClass=mlabMailAccount)(mail=%s))' mailHost
  {
    echo "# generated by lab.sh — mailHost value -> LMTP next hop of that store"
    for s in "${STORES[@]}"; do
      store_port "$s" 24
      echo "$s lmtp:[127.0.0.1]:$REPLY"
    done
  } >"$e/mailhosts"
  cat >"$e/main.cf" <<EOF
# generated by lab.sh — private Postfix of the mailshard lab in $DIR (see examples/postfix/)
compatibility_level = 3.6
queue_directory = $DIR/postfix/spool
data_directory = $DIR/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $DIR/logs/postfix.log
# Postfix writes its log only below these prefixes (default /var, /dev/stdout); with any
# other path every Postfix command dies before it can say why.
maillog_file_prefixes = $DIR/logs
syslog_name = mlab-postfix
myhostname = mlab-postfix.example.org
mydomain = example.org
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP mlab
biff = no
# Nothing leaves the lab: no DNS, no relay. A DSN to an outside sender fails here and shows
# as status=bounced in the log, which the tests look for.
smtp_dns_support_level = disabled
default_transport = error:5.7.1 the lab delivers nowhere outside example.org
relayhost =

# Mail users: every account in LDAP; unknown ones get 550 at RCPT time.
virtual_mailbox_domains = example.org
virtual_mailbox_maps = ldap:\$config_directory/ldap-recipients.cf
virtual_transport = retry:4.3.5 no mailHost for this account
# Routing, first match wins: frozen -> retry (deferred, stays queued); else the mailHost's LMTP.
transport_maps = ldap:\$config_directory/ldap-frozen.cf,
  pipemap:{ldap:\$config_directory/ldap-mailhost.cf, texthash:\$config_directory/mailhosts}
# smtpd resolves each recipient too and would answer 450 at RCPT time for a frozen user (a
# retry: route); its own trivial-rewrite (master.cf) routes without the freeze, so mail for a
# frozen user is accepted and waits in the queue. Its virtual_transport is plain lmtp for the
# same reason: an unknown user then gets 550 from virtual_mailbox_maps, not a 450 from the
# retry: below, and an account without a mailHost is accepted and deferred by the queue.
intake_transport_maps =
  pipemap:{ldap:\$config_directory/ldap-mailhost.cf, texthash:\$config_directory/mailhosts}

# Short retries (lab only; production keeps minutes, see examples/postfix/main.cf).
minimal_backoff_time = ${POSTFIX_MIN_BACKOFF_S}s
maximal_backoff_time = ${POSTFIX_MAX_BACKOFF_S}s
queue_run_delay = ${POSTFIX_QUEUE_RUN_DELAY_S}s
# A frozen user's mail never bounces for age within a test.
maximal_queue_lifetime = 1d
bounce_queue_lifetime = 1d
EOF
  cat >"$e/master.cf" <<EOF
# generated by lab.sh — no chroot (the lab keeps no copies of /etc files in its spool)
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$SMTP_PORT inet n    -       n       -       -       smtpd
  -o rewrite_service_name=rewrite-intake
rewrite-intake unix -     -       n       -       -       trivial-rewrite
  -o transport_maps=\$intake_transport_maps -o virtual_transport=lmtp
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
  chmod 644 "$e/main.cf" "$e/master.cf" "$e/mailhosts"
  # postfix check creates the queue's subdirectories with the owners and modes Postfix wants
  # (post-install create-missing) and checks the configuration.
  postfix -c "$e" check >>"$DIR/logs/postfix-check.out" 2>&1 ||
    { log_tail postfix-check; die "postfix -c $e check failed"; }
  printf '#!/bin/sh\nexec /usr/sbin/postqueue -c %s "$@"\n' "$e" >"$DIR/bin/postqueue"
  printf '#!/bin/sh\nexec /usr/sbin/postconf -c %s "$@"\n' "$e" >"$DIR/bin/postconf"
  chmod 755 "$DIR/bin/postqueue" "$DIR/bin/postconf"
}

write_lab_env() {
  local s u imap lmtp http tcp
  {
    echo "# generated by lab.sh start; KEY=VALUE, shell-sourceable"
    echo "LAB_DIR=$DIR"
    echo "LAB_PORT_BASE=$BASE"
    echo "LAB_SCRIPTS=$LAB_SCRIPTS"
    echo "LDAP_URI=$LDAP_URI"
    echo "LDAP_PORT=$LDAP_PORT"
    echo "LDAP_BASE=dc=example,dc=org"
    echo "LDAP_PEOPLE=ou=people,dc=example,dc=org"
    echo "LDAP_ADMIN_DN=cn=admin,dc=example,dc=org"
    echo "LDAP_ADMIN_PW=adminsecret"
    echo "LDAP_ADMIN_PW_FILE=$DIR/secrets/ldap.secret"
    echo "LDAP_READER_DN=cn=reader,dc=example,dc=org"
    echo "LDAP_READER_PW=readersecret"
    echo "LDAP_READER_PW_FILE=$DIR/secrets/reader.secret"
    echo "LDAP_MAILSHARD_DN=cn=mailshard,dc=example,dc=org"
    echo "LDAP_MAILSHARD_PW_FILE=$DIR/secrets/mailshard.secret"
    echo "LDAPS_PORT=$LDAPS_PORT"
    echo "LAB_CA_FILE=$DIR/tls/ca.pem"
    echo "LAB_OTHER_CA_FILE=$DIR/tls/other-ca.pem"
    echo "LDAPS_URI=ldaps://127.0.0.1:$LDAPS_PORT"
    echo "NGINX_IMAP_PORT=$NGINX_PORT"
    echo "AUTH_HTTP_PORT=$AUTH_PORT"
    echo "NGINX_POP3_PORT=$NGINX_POP3_PORT"
    echo "AUTH_HTTP_LOG=$DIR/logs/auth_http.out"
    echo "NODE_EXPORTER_PORT=$NODE_PORT"
    echo "NODE_EXPORTER_URL=http://127.0.0.1:$NODE_PORT/metrics"
    echo "NODE_EXPORTER_TEXTFILE_DIR=$DIR/node_exporter/textfile"
    echo "NODE_EXPORTER_TLS_URL=https://127.0.0.1:$NODE_TLS_PORT/metrics"
    echo "DOVEADM_USER=doveadm"
    echo "DOVEADM_PW=doveadmsecret"
    echo "DOVEADM_PW_FILE=$DIR/secrets/doveadm.secret"
    echo "DOVEADM_KEY=doveadmkey"
    echo "MAIL_UID=$MAIL_UID"
    echo "MAIL_GID=$MAIL_GID"
    echo "MAIL_DOMAIN=example.org"
    echo "USER_PASSWORD=secret"
    echo "MAILSHARD_CONFIG=$DIR/mailshard.toml"
    echo "SMTP_PORT=$SMTP_PORT"
    echo "POSTFIX_CONFIG_DIR=$DIR/postfix/etc"
    echo "POSTFIX_QUEUE_DIR=$DIR/postfix/spool"
    echo "POSTFIX_LOG=$DIR/logs/postfix.log"
    echo "POSTQUEUE=$DIR/bin/postqueue"
    echo "POSTFIX_MIN_BACKOFF_S=$POSTFIX_MIN_BACKOFF_S"
    echo "POSTFIX_MAX_BACKOFF_S=$POSTFIX_MAX_BACKOFF_S"
    echo "POSTFIX_QUEUE_RUN_DELAY_S=$POSTFIX_QUEUE_RUN_DELAY_S"
    echo "DPROXY_IMAP_PORT=$DPROXY_PORT"
    echo "DPROXY_LOG=$DIR/logs/dproxy.log"
    echo "PERDITION_IMAP_PORT=$PERDITION_PORT"
    echo "PERDITION_LOG=$DIR/logs/perdition.out"
    echo "PERDITION_PARKING_PORT=$PARKING_PORT"
    echo "ROUTED_IMAP_PORT=$ROUTED_PORT"
    echo "DIRECTOR_IMAP_PORT=$DIRECTOR_PORT"
    echo "DIRECTOR_RING_PORT=$DIRECTOR_RING_PORT"
    echo "DIRECTOR_DOVEADM_URL=http://127.0.0.1:$DIRECTOR_DOVEADM_PORT/doveadm/v1"
    echo "DIRECTOR_DOVEADM=$DIR/bin/doveadm-director"
    echo "DIRECTOR_LOG=$DIR/logs/director.log"
    echo "DIRECTOR_CONFIG=$DIR/mailshard-director.toml"
    echo "SHARED_BACKEND_PORT=$SHARED_BACKEND_PORT"
    echo "STORES=\"${STORES[*]}\""
    echo "SHARED_STORES=\"${SHARED_STORES[*]}\""
    echo "COURIER_STORES=\"${COURIER_STORES[*]}\""
    echo "COURIER_IMAPD=$COURIER_IMAPD"
    echo "COURIER_CONFIG=$DIR/mailshard-courier.toml"
    for s in "${COURIER_STORES[@]}"; do
      store_port "$s" 143
      echo "${s^^}_MAIL_ROOT=$DIR/$s/mail"
      echo "${s^^}_IMAP_PORT=$REPLY"
    done
    echo "MAILSHARD_AUTH_CONFIG=$DIR/mailshard-auth.toml"
    echo "PG_PORT=$PG_PORT"
    echo "PG_HOST=127.0.0.1"
    echo "PG_USER=mailshard"
    echo "PG_DATABASE=mailshard"
    echo "PG_URL=postgresql://mailshard@127.0.0.1:$PG_PORT/mailshard"
    echo "PG_PASSWORD_FILE=$DIR/secrets/pg.secret"
    echo "PG_SOCKET_DIR=$DIR/pg/run"
    echo "PG_BIN=$PG_BIN"
    echo "PG_LOG=$DIR/logs/postgres.out"
    echo "PG_CONFIG=$DIR/mailshard-pg.toml"
    for s in "${STORES[@]}" "${SHARED_STORES[@]}"; do
      u=${s^^}
      store_port "$s" 143; imap=$REPLY
      store_port "$s" 24; lmtp=$REPLY
      store_port "$s" 80; http=$REPLY
      store_port "$s" 425; tcp=$REPLY
      store_mail_root "$s"
      echo "${u}_MAIL_ROOT=$REPLY"
      echo "${u}_IMAP_PORT=$imap"
      store_routed_addr "$s"
      echo "${u}_ROUTED_ADDR=$REPLY"
      echo "${u}_LMTP_PORT=$lmtp"
      echo "${u}_DOVEADM_PORT=$http"
      echo "${u}_DOVEADM_TCP_PORT=$tcp"
      echo "${u}_DOVEADM_URL=http://127.0.0.1:$http/doveadm/v1"
      echo "${u}_CONF=$DIR/$s/dovecot.conf"
      echo "${u}_DOVEADM=$DIR/bin/doveadm-$s"
    done
  } >"$DIR/lab.env"
}

# The lab's [freeze] section, the same in each of its configs.
freeze_toml() {
  cat <<EOF
[freeze]
method = "ldap-attribute"
attribute = "mailAccountStatus"
frozen_value = "frozen"
active_value = "active"
max_duration = "10m"
EOF
}

write_mailshard_toml() {
  local s
  {
    cat <<EOF
# generated by lab.sh start — mailshard config for the lab in $DIR
[journal]
path = "$DIR/journal.sqlite"

[ldap]
uri = "$LDAP_URI"
bind_dn = "cn=mailshard,dc=example,dc=org"
bind_password_file = "$DIR/secrets/mailshard.secret"
base_dn = "ou=people,dc=example,dc=org"
filter = "(objectClass=mlabMailAccount)"
user_attribute = "mail"
host_attribute = "mailHost"
home_attribute = "mailMessageStore"
EOF
    for s in "${STORES[@]}"; do
      store_port "$s" 143; IMAP_PORT=$REPLY
      store_port "$s" 80
      cat <<EOF

[[server]]
name = "$s"
mail_root = "$DIR/$s/mail"
capacity_bytes = 10737418240     # 10 GiB each: the stores share one disk
metrics_url = "http://127.0.0.1:$NODE_PORT/metrics"
imap_address = "127.0.0.1:$IMAP_PORT"
doveadm_url = "http://127.0.0.1:$REPLY/doveadm/v1"
doveadm_password_file = "$DIR/secrets/doveadm.secret"
transport = "local"
class = "std"
EOF
    done
    echo
    freeze_toml
    cat <<EOF

[auth_http]
listen = "127.0.0.1:$AUTH_PORT"
login_attributes = ["mail", "uid"]
disabled_values = ["disabled"]
auth_wait = "${LAB_AUTH_WAIT:-3s}"
EOF
  } >"$DIR/mailshard.toml"
}

# DIR/mailshard-director.toml: the lab's config with [router] method = "director" and the shared
# backends as one storage group in class "nfs" (plus store1, outside any group), its own journal,
# and the lab's mailActivity attribute as the users' load figure.
write_director_toml() {
  local s IMAP_PORT http
  sed -e '/^\[\[server\]\]/,$d' -e "s#$DIR/journal.sqlite#$DIR/journal-director.sqlite#" \
    -e '/^\[ldap\]$/a activity_attribute = "mailActivity"' \
    -e "s#^\# generated by lab.sh start.*#\# generated by lab.sh start — mailshard config for the lab's director (examples/dovecot-director/)#" \
    "$DIR/mailshard.toml"
  for s in store1 "${SHARED_STORES[@]}"; do
    store_port "$s" 143; IMAP_PORT=$REPLY
    store_port "$s" 80; http=$REPLY
    store_mail_root "$s"
    cat <<EOF
[[server]]
name = "$s"
mail_root = "$REPLY"
capacity_bytes = 10737418240
metrics_url = "http://127.0.0.1:$NODE_PORT/metrics"
imap_address = "127.0.0.1:$IMAP_PORT"
doveadm_url = "http://127.0.0.1:$http/doveadm/v1"
doveadm_password_file = "$DIR/secrets/doveadm.secret"
transport = "local"
EOF
    if [[ $s == shared* ]]; then
      store_routed_addr "$s"
      # The storage group is a class of its own: the planner balances it by load, with director moves.
      printf 'class = "nfs"\nstorage_group = "nfs1"\ndirector_host = "%s"\n' "$REPLY"
    fi
    echo
  done
  freeze_toml
  cat <<EOF

[router]
method = "director"
director_url = "http://127.0.0.1:$DIRECTOR_DOVEADM_PORT/doveadm/v1"
director_password_file = "$DIR/secrets/doveadm.secret"
EOF
}

# The Courier stores' [[server]] entries (in DIR/mailshard-courier.toml and DIR/mailshard-auth.toml).
courier_servers_toml() {
  local s
  for s in "${COURIER_STORES[@]}"; do
    store_port "$s" 143
    cat <<EOF
[[server]]
name = "$s"
mail_root = "$DIR/$s/mail"
mail_location = "courier:~/Maildir"
capacity_bytes = 10737418240
metrics_url = "http://127.0.0.1:$NODE_PORT/metrics"
imap_address = "127.0.0.1:$REPLY"
transport = "local"
class = "courier"

EOF
  done
}

# DIR/mailshard-courier.toml: the lab's config for its Courier stores (mail_location courier:,
# no doveadm, kicks by examples/courier/kick-courier-user), its own journal.
write_courier_toml() {
  sed -e '/^\[\[server\]\]/,$d' -e "s#$DIR/journal.sqlite#$DIR/journal-courier.sqlite#" \
    -e "s#^\# generated by lab.sh start.*#\# generated by lab.sh start — mailshard config for the lab's Courier stores#" \
    "$DIR/mailshard.toml"
  courier_servers_toml
  freeze_toml
  cat <<EOF

[kick]
method = "command"
command = ["$(cd "$LAB_SCRIPTS/../.." && pwd)/examples/courier/kick-courier-user"]
EOF
}

# DIR/mailshard-auth.toml: what the lab's `mailshard auth-http` reads: DIR/mailshard.toml plus the
# Courier stores, so nginx routes by mailHost to every store a lab user can live on (one
# responder, as in production; the moves keep their own configs and journals).
write_auth_toml() {
  sed -e "s#^\# generated by lab.sh start.*#\# generated by lab.sh start — the lab's auth-http config: mailshard.toml plus the Courier stores#" \
    "$DIR/mailshard.toml"
  echo
  courier_servers_toml
}

# DIR/mailshard-pg.toml: the lab's config with the journal in the lab's PostgreSQL.
write_pg_toml() {
  sed -e "s#^path = \"$DIR/journal.sqlite\"#url = \"postgresql://mailshard@127.0.0.1:$PG_PORT/mailshard\"\npassword_file = \"$DIR/secrets/pg.secret\"#" \
    -e "s#^\# generated by lab.sh start.*#\# generated by lab.sh start — the lab's config with a PostgreSQL journal#" \
    "$DIR/mailshard.toml"
}

# A fresh cluster in DIR/pg/data owned by the postgres user: the superuser is `mailshard`, with a
# password for TCP (scram-sha-256 on 127.0.0.1, as a controller on another host would log in)
# and trust on the lab's own Unix socket (DIR/pg/run, for createdb below). No fsync: a lab
# database need not survive a power cut, and it makes initdb and every commit fast.
write_pg_cluster() {
  local uid gid
  uid=$(id -u "$PG_OS_USER") gid=$(id -g "$PG_OS_USER")
  mkdir -p "$DIR/pg/run"
  cp "$DIR/secrets/pg.secret" "$DIR/pg/pwfile"
  chown -R "$uid:$gid" "$DIR/pg"
  chmod 700 "$DIR/pg"
  setpriv --reuid="$uid" --regid="$gid" --init-groups "$PG_BIN/initdb" -D "$DIR/pg/data" -U mailshard \
    --pwfile="$DIR/pg/pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
    --no-instructions >>"$DIR/logs/initdb.out" 2>&1 || { log_tail initdb; die "initdb failed"; }
  rm -f "$DIR/pg/pwfile"
  cat >>"$DIR/pg/data/postgresql.conf" <<EOF

# lab.sh: loopback only, the lab's port and socket, no durability (a test lab)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DIR/pg/run'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
log_min_messages = warning
EOF
}

STARTING=0
on_exit() {
  local rc=$?
  if ((STARTING && rc != 0)); then
    echo "lab.sh: start failed, stopping what was started in $DIR" >&2
    do_stop || true
  fi
}

do_start() {
  local name t0=${EPOCHREALTIME/[.,]/} s p
  set_ports
  [[ -x /usr/sbin/slapd && -x /usr/sbin/dovecot && -x /usr/sbin/nginx && -x /usr/bin/prometheus-node-exporter ]] ||
    die "lab packages missing (slapd, dovecot, nginx, prometheus-node-exporter): run tests/lab/install-deps.sh as root"
  [[ -e /usr/lib/nginx/modules/ngx_mail_module.so ]] || die "nginx mail module missing: install libnginx-mod-mail"
  [[ -x $POSTFIX_SBIN/master && -e /usr/lib/postfix/postfix-ldap.so ]] ||
    die "postfix or postfix-ldap missing: run tests/lab/install-deps.sh as root"
  [[ -x /usr/sbin/perdition.imap4 && -e $PERDITION_LDAP_LIB ]] ||
    die "perdition or perdition-ldap missing: run tests/lab/install-deps.sh as root"
  [[ -e /usr/lib/dovecot/modules/auth/libauthdb_lua.so ]] ||
    die "dovecot-auth-lua missing (the Dovecot proxy's freeze passdb): run tests/lab/install-deps.sh as root"
  command -v unshare >/dev/null || die "unshare (util-linux) missing"
  [[ -x $PY ]] || die "$PY not found: install python3"
  [[ -x $PG_BIN/initdb && -x $PG_BIN/postgres ]] ||
    die "PostgreSQL server binaries missing in $PG_BIN: run tests/lab/install-deps.sh as root"
  id -u "$PG_OS_USER" >/dev/null 2>&1 || die "no '$PG_OS_USER' user: install postgresql"
  [[ -x $MAILSHARD_BIN ]] ||
    die "$MAILSHARD_BIN not found: build mailshard first (it answers nginx's auth_http), or set MAILSHARD_BIN"
  ((EUID == 0)) || die "start needs root (Dovecot's master and mail_uid switching)"
  MAIL_UID=$(id -u dovecot 2>/dev/null) || die "no 'dovecot' user: install dovecot-core"
  MAIL_GID=$(id -g dovecot)

  if [[ -d $DIR/pids ]]; then
    for name in "${DAEMONS[@]}"; do
      if pid_of "$name" && alive "$REPLY"; then
        die "lab in $DIR is already running ($name pid $REPLY); run: lab.sh stop $DIR"
      fi
    done
  fi
  for p in "$LDAP_PORT" "$LDAPS_PORT" "$NGINX_PORT" "$NGINX_POP3_PORT" "$AUTH_PORT" "$NODE_PORT" "$NODE_TLS_PORT" "$SMTP_PORT" \
           "$DPROXY_PORT" "$PERDITION_PORT" "$PARKING_PORT" "$DIRECTOR_PORT" "$DIRECTOR_RING_PORT" \
           "$DIRECTOR_DOVEADM_PORT" "$PG_PORT"; do
    if port_open "$p"; then die "port 127.0.0.1:$p is already in use (LAB_PORT_BASE=$BASE)"; fi
  done
  for s in "${STORES[@]}" "${SHARED_STORES[@]}"; do
    for p in 143 24 80 425; do
      store_port "$s" "$p"
      if port_open "$REPLY"; then die "port 127.0.0.1:$REPLY ($s) is already in use (LAB_PORT_BASE=$BASE)"; fi
    done
  done
  for s in "${COURIER_STORES[@]}"; do
    store_port "$s" 143
    if port_open "$REPLY"; then die "port 127.0.0.1:$REPLY ($s) is already in use (LAB_PORT_BASE=$BASE)"; fi
  done
  [[ -x $COURIER_IMAPD ]] || die "Courier's imapd $COURIER_IMAPD is missing: run tests/lab/install-deps.sh as root"

  # A fresh lab every time: remove what an earlier start created, but never clean a directory
  # that is not a lab (think `lab.sh start /usr`).
  if [[ -d $DIR && ! -e $DIR/$MARKER && -n $(ls -A "$DIR") ]]; then
    die "$DIR exists, is not empty and is not a lab directory (no $MARKER); pick a new or empty one"
  fi
  STARTING=1
  trap on_exit EXIT
  mkdir -p "$DIR"
  echo "mailshard test lab; lab.sh start re-creates its contents" >"$DIR/$MARKER"
  rm -rf "${DIR:?}"/{ldap,tls,store1,store2,store3,shared1,shared2,shared,director,nginx,dproxy,perdition,pg} \
         "${DIR:?}"/{node_exporter,postfix,secrets,pids,bin,logs} \
         "$DIR"/{lab.env,mailshard.toml,mailshard-director.toml,mailshard-courier.toml,mailshard-auth.toml,mailshard-pg.toml} \
         "$DIR"/journal.sqlite* \
         "$DIR"/journal-director.sqlite* "$DIR"/journal-courier.sqlite* "${COURIER_STORES[@]/#/$DIR/}"
  mkdir -p "$DIR"/{pids,logs,bin,secrets,node_exporter/textfile}
  chmod 755 "$DIR"
  chmod 700 "$DIR/secrets"
  printf %s adminsecret >"$DIR/secrets/ldap.secret"
  printf %s readersecret >"$DIR/secrets/reader.secret"
  printf %s doveadmsecret >"$DIR/secrets/doveadm.secret"
  printf %s mailshardsecret >"$DIR/secrets/mailshard.secret"
  printf %s pgsecret >"$DIR/secrets/pg.secret"
  chmod 600 "$DIR"/secrets/*.secret
  LDAP_URI=ldap://127.0.0.1:$LDAP_PORT

  write_tls
  write_slapd_conf
  for s in "${STORES[@]}" "${SHARED_STORES[@]}"; do write_dovecot_conf "$s"; done
  write_nginx_conf
  write_dproxy_conf
  write_director_conf
  write_perdition_conf
  write_postfix_conf
  write_lab_env
  write_mailshard_toml
  write_director_toml >"$DIR/mailshard-director.toml"
  write_courier_toml >"$DIR/mailshard-courier.toml"
  write_auth_toml >"$DIR/mailshard-auth.toml"
  write_pg_toml >"$DIR/mailshard-pg.toml"
  # initdb (~1 s) runs while the other daemons start; postgres is spawned last.
  write_pg_cluster &
  PG_INIT_PID=$!
  for s in "${COURIER_STORES[@]}"; do
    mkdir -p "$DIR/$s/mail"
    chown "$MAIL_UID:$MAIL_GID" "$DIR/$s" "$DIR/$s/mail"
  done
  # The dovecot user must reach the mail roots through every parent of DIR.
  setpriv --reuid="$MAIL_UID" --regid="$MAIL_GID" --clear-groups test -w "$DIR/store1/mail" ||
    die "user dovecot cannot write $DIR/store1/mail: a parent directory of $DIR is not traversable (chmod o+x)"

  spawn slapd /usr/sbin/slapd -d "${LAB_SLAPD_DEBUG:-stats}" -f "$DIR/ldap/slapd.conf" \
    -h "$LDAP_URI/ ldaps://127.0.0.1:$LDAPS_PORT/"
  for s in "${STORES[@]}" "${SHARED_STORES[@]}"; do spawn "$s" /usr/sbin/dovecot -F -c "$DIR/$s/dovecot.conf"; done
  spawn auth_http "$MAILSHARD_BIN" -c "$DIR/mailshard-auth.toml" auth-http
  spawn nginx /usr/sbin/nginx -p "$DIR/nginx/" -c "$DIR/nginx/nginx.conf" -e "$DIR/logs/nginx.log"
  printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$DIR/tls/server.pem" "$DIR/tls/server.key" \
    >"$DIR/node_exporter/web-tls.yml"
  spawn node_exporter_tls /usr/bin/prometheus-node-exporter \
    "--web.listen-address=127.0.0.1:$NODE_TLS_PORT" "--web.config.file=$DIR/node_exporter/web-tls.yml" \
    "--collector.textfile.directory=$DIR/node_exporter/textfile" --no-collector.systemd
  spawn node_exporter /usr/bin/prometheus-node-exporter \
    "--web.listen-address=127.0.0.1:$NODE_PORT" \
    "--collector.textfile.directory=$DIR/node_exporter/textfile" \
    --no-collector.systemd
  # master -d stays in the foreground, so it is the session leader stop() knows; on SIGTERM
  # it stops its children itself.
  spawn postfix "$POSTFIX_SBIN/master" -c "$DIR/postfix/etc" -d
  spawn dproxy /usr/sbin/dovecot -F -c "$DIR/dproxy/dovecot.conf"
  spawn director /usr/sbin/dovecot -F -c "$DIR/director/dovecot.conf"
  spawn perdition_parking /usr/sbin/dovecot -F -c "$DIR/perdition/parking/parking.conf"
  # perdition resolves mailHost ("store2") like any host name: in a mount namespace of its own,
  # the lab's hosts file stands in for DNS; the machine's /etc/hosts is never touched. unshare
  # and sh exec in place, so the recorded pid is perdition's. Log to stderr (-F +), no pid file.
  spawn perdition unshare --mount --propagation private /bin/sh -c \
    'mount --bind "$1" /etc/hosts && exec /usr/sbin/perdition.imap4 --no_daemon -F + --pid_file "" -f "$2"' \
    perdition "$DIR/perdition/hosts" "$DIR/perdition/perdition.imap4.conf"
  # Courier's imapd behind an LDAP login loop (courier_imaplogin.py), one per Courier store.
  for s in "${COURIER_STORES[@]}"; do
    spawn "$s" "$PY" "$LAB_SCRIPTS/courier_imaplogin.py" --lab "$DIR" --store "$s"
  done

  wait "$PG_INIT_PID" || die "could not create the PostgreSQL cluster in $DIR/pg (logs in $DIR/logs/initdb.out)"
  spawn postgres setpriv --reuid="$(id -u "$PG_OS_USER")" --regid="$(id -g "$PG_OS_USER")" --init-groups \
    "$PG_BIN/postgres" -D "$DIR/pg/data"

  wait_port slapd "$LDAP_PORT"
  slappasswd -h '{SSHA}' -T "$DIR/secrets/reader.secret" >"$DIR/ldap/reader.hash"
  slappasswd -h '{SSHA}' -T "$DIR/secrets/mailshard.secret" >"$DIR/ldap/mailshard.hash"
  ldapadd -x -H "$LDAP_URI" -D cn=admin,dc=example,dc=org -y "$DIR/secrets/ldap.secret" \
    >>"$DIR/logs/ldapadd.out" 2>&1 <<EOF || { log_tail ldapadd; die "could not add the base entries to slapd"; }
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: mailshard lab

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: cn=reader,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
description: read-only service account (reads userPassword, no size limit)
userPassword: $(<"$DIR/ldap/reader.hash")

dn: cn=mailshard,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: mailshard
description: mailshard: reads accounts, writes mailHost, mailMessageStore, mailAccountStatus
userPassword: $(<"$DIR/ldap/mailshard.hash")
EOF
  for s in "${STORES[@]}" "${SHARED_STORES[@]}"; do store_port "$s" 143; wait_port "$s" "$REPLY"; done
  wait_port auth_http "$AUTH_PORT"
  wait_port nginx "$NGINX_PORT"
  wait_port node_exporter "$NODE_PORT"
  wait_port node_exporter_tls "$NODE_TLS_PORT"
  wait_port postfix "$SMTP_PORT"
  wait_port dproxy "$DPROXY_PORT"
  wait_port director "$DIRECTOR_PORT"
  wait_port perdition_parking "$PARKING_PORT"
  wait_port perdition "$PERDITION_PORT"
  for s in "${COURIER_STORES[@]}"; do store_port "$s" 143; wait_port "$s" "$REPLY"; done
  wait_port postgres "$PG_PORT"
  setpriv --reuid="$(id -u "$PG_OS_USER")" --regid="$(id -g "$PG_OS_USER")" --init-groups \
    "$PG_BIN/createdb" -h "$DIR/pg/run" -p "$PG_PORT" -U mailshard mailshard >>"$DIR/logs/initdb.out" 2>&1 ||
    { log_tail initdb; die "createdb mailshard failed"; }
  STARTING=0
  t0=$(( (${EPOCHREALTIME/[.,]/} - t0) / 1000 ))
  echo "lab started in $DIR (LAB_PORT_BASE=$BASE) in ${t0} ms; env: $DIR/lab.env"
}

# --- status / env / populate ------------------------------------------------------------------

do_status() {
  local name ok=0
  [[ -f $DIR/lab.env ]] || die "no lab in $DIR (no lab.env; run: lab.sh start $DIR)"
  for name in "${DAEMONS[@]}"; do
    if pid_of "$name" && alive "$REPLY"; then
      printf '%-14s running  pid %s\n' "$name" "$REPLY"
    else
      printf '%-14s stopped\n' "$name"; ok=1
    fi
  done
  return $ok
}

main() {
  local cmd=${1:-}
  case $cmd in
    -h|--help|help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
  esac
  shift
  if [[ ${1:-} == -h || ${1:-} == --help ]]; then usage; exit 0; fi
  lab_dir "${1:-}"; shift
  case $cmd in
    start)   (($# == 0)) || die "start: unexpected argument '$1'"; do_start ;;
    stop)    (($# == 0)) || die "stop: unexpected argument '$1'"; do_stop; echo "lab in $DIR stopped" ;;
    restart) (($# == 0)) || die "restart: unexpected argument '$1'"; do_stop; do_start ;;
    status)  do_status ;;
    env)     [[ -f $DIR/lab.env ]] || die "no lab.env in $DIR (run: lab.sh start $DIR)"; cat "$DIR/lab.env" ;;
    populate) exec "$PY" "$LAB_SCRIPTS/populate.py" --lab "$DIR" "$@" ;;
    *) die "unknown command '$cmd' (try: lab.sh --help)" ;;
  esac
}

main "$@"
