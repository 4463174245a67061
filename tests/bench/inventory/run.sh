#!/bin/bash
# Inventory benchmark: the two figures issue 3 asks for, each as a ratio to a
# baseline run in the same invocation (medians of RUNS runs, interleaved):
#   (a) reading USERS accounts from the lab's slapd with mailshard's paged
#       LdapDirectory vs `ldapsearch -E pr=500/noprompt` for the same
#       attributes as the same identity               (target <= 1.5x)
#   (b) sizing a MESSAGES-message Maildir (../shared/bench/gen_maildir.py)
#       with the Maildir scanner vs a bare readdir walk (../shared/bench/scan.c,
#       else inventory_bench walk) and vs `du -s --apparent-size -B1`, warm
#       cache                                          (targets <= 2x, <= 0.5x)
# It also saves a snapshot of the 100k-user lab with `mailshard inventory
# --save` and has ../shared/bench/metrics.py read it (when that is present).
#
# Usage: tests/bench/inventory/run.sh [BUILD_DIR]      (build first: make -C BUILD_DIR)
# Env:   RUNS (7), USERS (100000), MESSAGES (100000), WORK (/tmp/inv-bench),
#        LAB_PORT_BASE (10000; the lab it starts uses these ports),
#        SHARED_BENCH (<repo>/../shared/bench)
# Exit:  0 all targets met, 1 a target missed or a tool disagreed on the data.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
RUNS=${RUNS:-7}
USERS=${USERS:-100000}
MESSAGES=${MESSAGES:-100000}
WORK=${WORK:-/tmp/inv-bench}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
PY=/usr/bin/python3
BENCH=$BUILD/tests/bench/inventory/inventory_bench
MAILSHARD=$BUILD/mailshard
LAB=$WORK/lab
[[ -x $BENCH && -x $MAILSHARD ]] || { echo "build first: make -C $BUILD mailshard inventory_bench" >&2; exit 2; }
mkdir -p "$WORK"

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
# time_us CMD...: runs CMD with stdout to $WORK/.out, prints wall microseconds.
time_us() {
  local t0 t1
  t0=$(now_us)
  "$@" >"$WORK/.out" 2>"$WORK/.err" || { echo "FAILED: $* ($(cat "$WORK/.err"))" >&2; exit 1; }
  t1=$(now_us)
  echo $((t1 - t0))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
secs() { awk -v us="$1" 'BEGIN {printf "%.3f", us/1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t) ? "met" : "MISSED"}'; }
status=0

echo "# $(date -u +%FT%TZ) host=$(hostname) cpus=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) runs=$RUNS"

# ---- (a) LDAP ----------------------------------------------------------------------------
trap 'bash "$ROOT/tests/lab/lab.sh" stop "$LAB" >/dev/null 2>&1 || true' EXIT
MAILSHARD_BIN=$MAILSHARD LAB_SLAPD_DEBUG=0 bash "$ROOT/tests/lab/lab.sh" restart "$LAB" >/dev/null
t0=$(now_us)
# user00000..user99999: the lab numbers users with 5 digits.
bash "$ROOT/tests/lab/lab.sh" populate "$LAB" --first 0 --users "$USERS" >/dev/null
echo "# populated $USERS users in $(secs $(( $(now_us) - t0 ))) s"
# shellcheck disable=SC1091
. "$LAB/lab.env"
CONFIG=$LAB/mailshard.toml
ATTRS=(mail mailHost mailMessageStore mailAccountStatus)   # user, host, home, freeze attribute
LDAPSEARCH=(ldapsearch -x -LLL -H "$LDAP_URI" -D "$LDAP_ADMIN_DN" -w "$LDAP_ADMIN_PW" -b "$LDAP_PEOPLE"
            -E pr=500/noprompt "(objectClass=mlabMailAccount)" "${ATTRS[@]}")
"${LDAPSEARCH[@]}" >"$WORK/ldif"
n_ldapsearch=$(grep -c '^dn: ' "$WORK/ldif")
"$BENCH" ldap "$CONFIG" >"$WORK/.out"
n_ours=$(sed -n 's/^accounts=\([0-9]*\).*/\1/p' "$WORK/.out")
echo "# accounts: ldapsearch=$n_ldapsearch mailshard=$n_ours ($(cat "$WORK/.out"))"
[[ $n_ldapsearch == "$n_ours" && $n_ours -ge $USERS ]] || { echo "account counts differ" >&2; status=1; }
a_base=(); a_ours=()
for r in $(seq "$RUNS"); do
  a_base+=("$(time_us "${LDAPSEARCH[@]}")")
  a_ours+=("$(time_us "$BENCH" ldap "$CONFIG")")
  echo "R ldap run=$r ldapsearch_us=${a_base[-1]} mailshard_us=${a_ours[-1]}"
done
mb=$(median "${a_base[@]}"); mo=$(median "${a_ours[@]}"); ra=$(ratio "$mo" "$mb")
echo "RESULT ldap users=$n_ours ldapsearch=$(secs "$mb")s mailshard=$(secs "$mo")s ratio=$ra target<=1.5 $(verdict "$ra" 1.5)"
[[ $(verdict "$ra" 1.5) == met ]] || status=1

# Some mail, so the snapshot has mailbox bytes (metrics.py divides by them).
for i in $(seq 1 37 1000); do
  $PY "$ROOT/tests/lab/deliver.py" --lab "$LAB" --user "$(printf 'user%05d' "$i")" --count 2 --tag bench \
    --size $((20 * i + 1000)) >/dev/null
done
# The whole command on the same lab, once, for scale (metrics + LDAP + sizing + snapshot).
e2e=$(time_us "$MAILSHARD" -c "$CONFIG" inventory --save "$WORK/snapshot")
echo "# mailshard inventory --save ($USERS users): $(secs "$e2e") s; $(tail -1 "$WORK/.out")"
if [[ -f $SHARED/metrics.py ]]; then
  echo "user_id,from_server,to_server,size_bytes" >"$WORK/empty_plan.csv"
  if out=$($PY "$SHARED/metrics.py" --fleet "$WORK/snapshot" --plan "$WORK/empty_plan.csv" 2>&1); then
    echo "# metrics.py read the saved snapshot: $out"
  else
    echo "metrics.py could not read the snapshot: $out" >&2
    status=1
  fi
fi
bash "$ROOT/tests/lab/lab.sh" stop "$LAB" >/dev/null
trap - EXIT

# ---- (b) Maildir sizing ------------------------------------------------------------------
HOME_DIR=$WORK/maildir_$MESSAGES
if [[ ! -f $HOME_DIR.done ]]; then
  [[ -f $SHARED/gen_maildir.py ]] || { echo "need $SHARED/gen_maildir.py" >&2; exit 2; }
  rm -rf "$HOME_DIR"
  t0=$(now_us)
  $PY "$SHARED/gen_maildir.py" generate "$HOME_DIR" --messages "$MESSAGES" >/dev/null
  touch "$HOME_DIR.done"
  echo "# generated $MESSAGES messages in $(secs $(( $(now_us) - t0 ))) s"
fi
if [[ -f $SHARED/scan.c ]]; then
  gcc -O2 -o "$WORK/scan" "$SHARED/scan.c"
  WALK=("$WORK/scan" readdir "$HOME_DIR"); walk_name="scan.c readdir"
else
  WALK=("$BENCH" walk "$HOME_DIR"); walk_name="inventory_bench walk"
fi
DU=(du -s --apparent-size -B1 "$HOME_DIR")
OURS=("$BENCH" size "$HOME_DIR")
# Warm the cache, and check that the scanner agrees with du byte for byte.
"${WALK[@]}" >/dev/null
du_bytes=$("${DU[@]}" | cut -f1)
ours_line=$("${OURS[@]}")
ours_bytes=$(sed -n 's/^bytes=\([0-9]*\).*/\1/p' <<<"$ours_line")
echo "# $ours_line; du=$du_bytes; $walk_name: $("${WALK[@]}")"
[[ $ours_bytes == "$du_bytes" ]] || { echo "scanner and du disagree: $ours_bytes vs $du_bytes" >&2; status=1; }
b_walk=(); b_ours=(); b_du=()
for r in $(seq "$RUNS"); do
  b_walk+=("$(time_us "${WALK[@]}")")
  b_ours+=("$(time_us "${OURS[@]}")")
  b_du+=("$(time_us "${DU[@]}")")
  echo "R maildir run=$r readdir_us=${b_walk[-1]} mailshard_us=${b_ours[-1]} du_us=${b_du[-1]}"
done
mw=$(median "${b_walk[@]}"); mo=$(median "${b_ours[@]}"); md=$(median "${b_du[@]}")
rw=$(ratio "$mo" "$mw"); rd=$(ratio "$mo" "$md")
echo "RESULT maildir messages=$MESSAGES readdir=$(secs "$mw")s mailshard=$(secs "$mo")s du=$(secs "$md")s" \
     "vs_readdir=$rw target<=2 $(verdict "$rw" 2) vs_du=$rd target<=0.5 $(verdict "$rd" 0.5)"
[[ $(verdict "$rw" 2) == met && $(verdict "$rd" 0.5) == met ]] || status=1
exit $status
