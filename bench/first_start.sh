#!/usr/bin/env bash
# First contact, repeated: on fresh clones of this repository, the first start of `scripts/run`
# with two workers and an empty var/, as a new user runs it, N times in a row. Each start must
# bring both workers up (one ready line each), answer /readyz and a real upload, and stop cleanly
# on Ctrl-C (SIGINT). Prints the time to ready of each start and a summary.
#
#   MODEL=models bench/first_start.sh [N]      # N defaults to 20
#
# MODEL is a trained artifact folder (training is not what is being repeated); the environment of
# each start is built from nothing but PATH and HOME, as a new shell's would be.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-20}"
model="$(cd "${MODEL:?set MODEL to a trained artifact folder}" && pwd)"
work="$(mktemp -d /tmp/first-start.XXXXXX)"
trap 'rm -rf "$work"' EXIT
digit="$root/tests/data/golden/digit-7.png"
port=8321
passed=0
times=()
for i in $(seq "$runs"); do
  clone="$work/clone-$i"
  git clone -q "$root" "$clone"
  log="$work/run-$i.log"
  started=$(date +%s%N)
  (cd "$clone" && exec env -i HOME="$HOME" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    MNIST_API_MODEL_PATH="$model" MNIST_API_WORKERS=2 MNIST_API_PORT=$port \
    setsid scripts/run >"$log" 2>&1) &
  pid=$!
  ok=0
  for _ in $(seq 600); do
    if [[ $(grep -c "mnist_api: ready on" "$log" || true) -eq 2 ]]; then ok=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  ready=$(( ($(date +%s%N) - started) / 1000000 ))  # ms
  verdict="FAILED"
  if [[ $ok -eq 1 ]] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null \
    && curl -sf -F "file=@$digit" "http://127.0.0.1:$port/v1/predictions" | grep -q '"digit":7'; then
    verdict="ok"
  fi
  kill -INT -- -$pid 2>/dev/null || true
  wait $pid && code=0 || code=$?
  [[ $code -eq 0 || $code -eq 130 ]] || verdict="FAILED (exit $code)"
  if [[ $verdict == ok ]]; then passed=$((passed + 1)); times+=("$ready"); fi
  printf 'start %2d: %s, both workers ready after %d.%d s (setup included)\n' "$i" "$verdict" \
    $((ready / 1000)) $((ready % 1000 / 100))
  [[ $verdict == ok ]] || tail -20 "$log"
  rm -rf "$clone"
done
printf '%d of %d first starts passed; time to ready: %s\n' "$passed" "$runs" \
  "$(printf '%s\n' "${times[@]}" | sort -n \
    | awk '{a[NR]=$1/1000} END {if (NR) printf "min %.1f s, median %.1f s, max %.1f s", a[1], a[int((NR+1)/2)], a[NR]}')"
[[ $passed -eq $runs ]]
