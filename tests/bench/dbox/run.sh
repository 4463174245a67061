#!/bin/bash
# dbox benchmark: the sync engine's incremental pass over a real mdbox with
# half of its mail in the alt storage, after a "1% day" (1% new mail
# delivered by Dovecot, 1% of the messages flagged, 1% expunged), against
# the bytes of the new mail. Target (issue 11): at most 1.2x.
#
# Usage: tests/bench/dbox/run.sh [WORKDIR]
#   env: MAILSHARD=build/mailshard  MESSAGES=20000  GEN=/work/shared/bench/gen_maildir.py
# Needs: dovecot + doveadm (a private instance is started under WORKDIR: only
# its auth service, for doveadm's user lookups), gen_maildir.py, python3. As root
# (mail belongs to the dovecot user, as in production).
#
# What is measured (local to local):
#   1. gen_maildir.py generates MESSAGES messages (10 folders, lognormal sizes); Dovecot
#      imports them into mdbox:~/mdbox:ALT=ALT (doveadm import), then moves the
#      smaller half (by count: SMALLER the median) to the alt storage (altmove + purge).
#   2. mailshard sync copies the home and the alt tree (initial pass, with --state).
#   3. The day: Dovecot imports 1% more messages (a second generated Maildir),
#      flags 1% as \Seen, expunges 1% (no purge: expunge in mdbox only drops references).
#   4. mailshard sync again from the state, home and alt: bytes sent vs the new mail's bytes
#      (the messages' sizes as Dovecot counts them, doveadm fetch size.physical).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/dbox-bench}
MS=${MAILSHARD:-$REPO/build/mailshard}
N=${MESSAGES:-20000}
GEN=${GEN:-/work/shared/bench/gen_maildir.py}
PY=/usr/bin/python3
[ -x "$MS" ] || { echo "no mailshard binary at $MS (build first or set MAILSHARD)" >&2; exit 2; }
[ -f "$GEN" ] || { echo "needs gen_maildir.py (set GEN=...)" >&2; exit 2; }
command -v doveadm >/dev/null || { echo "needs doveadm (dovecot-core)" >&2; exit 2; }
((EUID == 0)) || { echo "run as root (mail belongs to the dovecot user)" >&2; exit 2; }
MUID=$(id -u dovecot) MGID=$(id -g dovecot)

if [ -f "$W/run/master.pid" ]; then doveadm -c "$W/dovecot.conf" stop 2>/dev/null || true; fi
rm -rf "$W"
mkdir -p "$W"/{run,state,src/mail/u,src/mail/alt,dst/mail,gen}
SRC=$W/src/mail DST=$W/dst/mail
cat > "$W/dovecot.conf" <<CONF
instance_name = dbox-bench-$$
base_dir = $W/run
state_dir = $W/state
log_path = $W/dovecot.log
protocols = none
ssl = no
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_uid = $MUID
mail_gid = $MGID
first_valid_uid = $MUID
first_valid_gid = $MGID
mail_fsync = never
mail_location = mdbox:~/mdbox:ALT=$SRC/alt
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=$MUID gid=$MGID home=$SRC/u
}
service anvil {
  chroot =
}
CONF
chown -R dovecot:dovecot "$W/src"
dovecot -c "$W/dovecot.conf"
trap 'doveadm -c "$W/dovecot.conf" stop 2>/dev/null || true' EXIT
DA() { doveadm -c "$W/dovecot.conf" "$@"; }
# The benchmark's own measuring (message sizes over every message) must not
# change the mailbox: a fetch of size.physical over all 20k messages makes
# Dovecot cache the field for each of them, rewrite every folder's cache, and
# with it every record of every dovecot.index (their cache offsets). That was
# 0.72 MB of index deltas in the "day" that no user's day makes. MEASURE never
# caches what it fetches.
MEASURE() { doveadm -c "$W/dovecot.conf" -o 'mail_never_cache_fields=*' -f flow fetch -u bench size.physical all; }

echo "# dbox benchmark $(date -u +%FT%TZ) messages=$N binary=$MS ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null))"
t0=$SECONDS
$PY "$GEN" generate "$W/gen/base" --messages "$N" > /dev/null
$PY "$GEN" generate "$W/gen/day" --messages $((N / 100)) --seed 7 > /dev/null
# The generator's index files are look-alikes: Dovecot reads the messages and uidlists only.
find "$W/gen" -name 'dovecot.index*' -delete
chown -R dovecot:dovecot "$W/gen"
DA import -u bench "maildir:$W/gen/base/Maildir" "" all
MEDIAN=$(MEASURE | sed 's/.*=//' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
DA altmove -u bench smaller "$MEDIAN"
DA purge -u bench
echo "# generated and imported in $((SECONDS - t0)) s; alt storage: messages smaller than $MEDIAN bytes"
du -sb "$SRC/u/mdbox" "$SRC/alt" | sed 's/^/#   /'

sync_pass() {  # NAME SRC DST STATE
  "$MS" --json sync --state "$4" "$2" "$3" > "$W/$1.json"
  $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get('bytes_sent', d.get('pass', {}).get('bytes_sent')))" "$W/$1.json"
}
b_home0=$(sync_pass initial-home "$SRC/u" "$DST/u" "$W/home.state")
b_alt0=$(sync_pass initial-alt "$SRC/alt" "$DST/alt" "$W/alt.state")
echo "# initial: home $b_home0 B, alt $b_alt0 B sent"

# The day.
snap() { (cd "$SRC" && find . -type f -printf '%s %T@ %p\n' | sort -k3); }
snap > "$W/files.before"
before=$(MEASURE | sed 's/.*=//' | awk '{s+=$1} END {print s+0}')
DA import -u bench "maildir:$W/gen/day/Maildir" "" all
after=$(MEASURE | sed 's/.*=//' | awk '{s+=$1} END {print s+0}')
NEW=$((after - before))
k=$((N / 100))
DA flags add -u bench '\Seen' mailbox INBOX uid "1:$k"
DA expunge -u bench mailbox INBOX uid "$((k + 1)):$((2 * k))"

snap > "$W/files.after"
# Where the day's bytes went: files new or changed, by kind (size after the day).
$PY - "$W/files.before" "$W/files.after" <<'PY'
import sys, collections
def load(p):
    out = {}
    for line in open(p):
        size, mtime, path = line.rstrip("\n").split(" ", 2)
        out[path] = (int(size), mtime)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
kinds = collections.defaultdict(lambda: [0, 0, 0])  # files, bytes now, bytes grown
for path, (size, mtime) in b.items():
    old = a.get(path)
    if old == (size, mtime): continue
    name = path.rsplit("/", 1)[-1]
    kind = "m.*" if name.startswith("m.") else name
    k = kinds[kind]; k[0] += 1; k[1] += size; k[2] += size - (old[0] if old else 0)
for kind, (n, now, grown) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
    print(f"#   changed {kind:28} {n:5} files  {now:11} bytes now  {grown:+11} bytes")
PY
b_home1=$(sync_pass incr-home "$SRC/u" "$DST/u" "$W/home.state")
b_alt1=$(sync_pass incr-alt "$SRC/alt" "$DST/alt" "$W/alt.state")
SENT=$((b_home1 + b_alt1))
RATIO=$($PY -c "import sys; print(f'{int(sys.argv[1])/int(sys.argv[2]):.3f}')" "$SENT" "$NEW")
echo "new mail (Dovecot's physical sizes): $NEW bytes"
echo "incremental pass after the 1% day: home $b_home1 + alt $b_alt1 = $SENT bytes sent"
echo "ratio: $RATIO (target <= 1.2: $($PY -c "import sys; print('PASS' if float(sys.argv[1]) <= 1.2 else 'FAIL')" "$RATIO"))"
