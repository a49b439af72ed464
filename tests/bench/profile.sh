# shellcheck shell=bash
# Optional profiling for tests/bench/pods.sh, after its matrix: PROFILE=perf records
# `perf record -g` of each proxy, SYSCALLS=1 counts each proxy's system calls with
# `strace -c -f`, both during extra get-32 and get-512 runs on the weft and haproxy paths. These
# runs are not in the table: a proxy under strace (and, less, under perf) is slower than without,
# so they only say where the time and the calls go, not how fast. Sourced after matrix.sh.
# Output: $W/raw/profile/perf-SCENARIO-PATH-SIDE.data (read with `perf report -i`) and
# strace-SCENARIO-PATH-SIDE.txt, with a per-request summary of the calls printed after the table.

PROFILE_SCENARIOS=(get-32 get-512)

profiling() { [ "${PROFILE:-}" = perf ] || [ -n "${SYSCALLS:-}" ]; }

# profile_check_tools: the tools the requested profiling needs (before anything is set up).
profile_check_tools() {
  case "${PROFILE:-}" in
    "" | perf) ;;
    *) die "PROFILE=$PROFILE: expected perf (or unset)" ;;
  esac
  [ "${PROFILE:-}" != perf ] || need_tools perf
  [ -z "${SYSCALLS:-}" ] || need_tools strace
}

# profile_round: with PROFILE=perf and/or SYSCALLS=1, each of PROFILE_SCENARIOS this run selected
# on the weft and haproxy paths once more under each tool in turn (never both at once: perf would
# profile strace's ptrace stops); then the system calls per request.
profile_round() {
  profiling || return 0
  local dir=$W/raw/profile tools=() tool s p
  mkdir -p "$dir"
  chown "$PROXY_UID:$PROXY_UID" "$dir"
  [ "${PROFILE:-}" != perf ] || tools+=(perf)
  [ -z "${SYSCALLS:-}" ] || tools+=(strace)
  for tool in "${tools[@]}"; do
    for s in "${PROFILE_SCENARIOS[@]}"; do
      selected "$s" || continue
      for p in weft haproxy; do
        echo "profiling: $s on the $p path under $tool (${D}s)" >&2
        profile_one "$tool" "$s" "$p" "$dir"
      done
    done
  done
  [ -z "${SYSCALLS:-}" ] || syscall_summary "$dir"
}

# profile_one TOOL SCENARIO PATH DIR: SCENARIO's load on PATH with its two proxies under TOOL
# (perf or strace); the load generator's output in DIR/TOOL-SCENARIO-PATH.
profile_one() {
  local tool=$1 s=$2 p=$3 dir=$4 pid side tracers=() sides=(client server) i=0
  # shellcheck disable=SC2086 # a list of pids
  for pid in ${PROXIES[$p]}; do
    side=${sides[i]}
    i=$((i + 1))
    if [ "$tool" = perf ]; then
      perf record -g -q -p "$pid" -o "$dir/perf-$s-$p-$side.data" -- sleep "$D" \
        > "$dir/perf-$s-$p-$side.log" 2>&1 &
    else
      strace -c -f -p "$pid" -o "$dir/strace-$s-$p-$side.txt" 2> "$dir/strace-$s-$p-$side.log" &
    fi
    tracers+=($!)
  done
  # strace needs a moment to attach to every thread; its log says when each one is attached.
  if [ "$tool" = strace ]; then
    wait_for 5 "strace to attach to the $p proxies" strace_attached "$dir" "$s" "$p" ||
      die "strace did not attach to the $p proxies: $(cat "$dir/strace-$s-$p-"*.log)"
  fi
  run_load "$s" "$p" "$dir/$tool-$s-$p" ||
    die "the load generator failed while profiling $s on $p under $tool"
  # strace prints its counts when interrupted; perf stops by itself after D seconds.
  [ "$tool" != strace ] || kill -INT "${tracers[@]}" 2>/dev/null || true
  for pid in "${tracers[@]}"; do wait "$pid" || true; done
}

# strace_attached DIR SCENARIO PATH: both strace logs report an attached process.
strace_attached() {
  local f
  for f in "$1/strace-$2-$3-client.log" "$1/strace-$2-$3-server.log"; do
    grep -q attached "$f" 2>/dev/null || return 1
  done
}

# syscall_summary DIR: per proxy and scenario, the system calls per request (strace's total over
# the requests the load generator completed) and the five most frequent calls.
syscall_summary() {
  python3 - "$1" "${PROFILE_SCENARIOS[@]}" <<'PY'
import os, re, sys
d, scenarios = sys.argv[1], sys.argv[2:]
print("\nSystem calls per request under strace -c -f (extra runs, not the table's):\n")
print("| scenario | proxy | requests | calls per request | top calls (per request) |")
print("|---|---|---:|---:|---|")
for s in scenarios:
    for p in ("weft", "haproxy"):
        if not os.path.exists(os.path.join(d, f"strace-{s}-{p}")):
            continue  # not selected in this run
        load = open(os.path.join(d, f"strace-{s}-{p}")).read()
        m = re.search(r"(\d+) requests in", load)
        reqs = int(m.group(1)) if m else 0
        for side in ("client", "server"):
            calls = {}
            total = 0
            for line in open(os.path.join(d, f"strace-{s}-{p}-{side}.txt")):
                f = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(f) >= 5 and re.match(r"[\d.]+$", f[0]) and f[-1] != "total":
                    calls[f[-1]] = int(f[3])
                elif f and f[-1] == "total" and len(f) >= 4:
                    total = int(f[3])
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:5]
            per = lambda n: f"{n / reqs:.2f}" if reqs else "n/a"
            tops = ", ".join(f"{k} {per(v)}" for k, v in top)
            print(f"| {s} | {p} {side} | {reqs:,} | {per(total)} | {tops} |")
PY
}
