#!/usr/bin/env bash
# `make smoke`: a new user's first command, run the way they run it. A fresh `git clone` of HEAD in a folder with no
# ../shared beside it, an empty CALLQA_HOME and a new .venv, then `make demo` (install → model pull → train the demo
# recipe for a few steps on a slice of the sample → evaluate → export with the gate on → serve on a free port), then
# the exact curl that `make demo` printed, which must answer 200 with every head and the scorecard. Finally the
# server is stopped and nothing it started may be left running or listening.
#
#   SMOKE_STEPS   training steps (default 3; "recipe": the demo recipe's own, i.e. the full `make demo`)
#   SMOKE_CALLS   sample calls to use (default 120; "all": the whole sample)
#   SMOKE_KEEP=1  keep the work folder for a look afterwards    SMOKE_TIMEOUT  seconds to wait for the server (900)
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
steps=${SMOKE_STEPS:-3}
calls=${SMOKE_CALLS:-120}
work=$(mktemp -d "${TMPDIR:-/tmp}/callqa-smoke.XXXXXX")  # its clone's ../shared does not exist
clone=$work/callqa
log=$work/demo.log
started=$SECONDS
demo_pid=

say() { printf 'smoke [%3ds] %s\n' $((SECONDS - started)) "$*"; }

# Every process the demo started: its whole tree (BentoML's workers run in sessions of their own, so a process group
# is not enough), plus anything whose working directory is inside the clone (orphans re-parented to init).
smoke_pids() {
    local pids="" p
    if [ -n "$demo_pid" ]; then
        pids=$(ps -eo pid=,ppid= | awk -v root="$demo_pid" '
            { parent[$1] = $2 } END {
                keep[root] = 1; changed = 1
                while (changed) { changed = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
                for (p in keep) print p }')
    fi
    for p in /proc/[0-9]*; do
        if [[ "$(readlink "$p/cwd" 2>/dev/null)" == "$clone"* ]]; then pids+=" ${p#/proc/}"; fi
    done
    for p in $pids; do
        if [ "$p" != $$ ] && [ -d "/proc/$p" ]; then echo "$p"; fi
    done | sort -un
}

stop_demo() {
    local pids
    pids=$(smoke_pids)
    [ -z "$pids" ] && return 0
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 40); do
        pids=$(smoke_pids); [ -z "$pids" ] && return 0; sleep 0.5
    done
    kill -KILL $pids 2>/dev/null || true
    sleep 1
}

finish() {
    local rc=$?
    set +e  # clean up whatever happens
    stop_demo
    if [ $rc -ne 0 ]; then
        echo "smoke: FAILED after $((SECONDS - started)) s; the last lines of the demo's log:"
        tail -n 60 "$log" 2>/dev/null | sed 's/^/  | /'
        echo "smoke: 0 passed, 1 failed"
    fi
    [ "${SMOKE_KEEP:-0}" = 1 ] && echo "smoke: work folder kept at $work" || rm -rf "$work"
    exit $rc
}
trap finish EXIT

fail() { say "FAILED: $*"; exit 1; }

say "cloning HEAD of $repo into $clone (no ../shared there)"
git clone -q "$repo" "$clone"
[ ! -e "$clone/../shared" ] || fail "$clone/../shared exists"
cd "$work"  # not inside the clone: anything running there when we are done was left behind
if [ "$calls" = all ]; then cp "$clone/datasets/sample/calls.jsonl" "$work/sample.jsonl"
else head -n "$calls" "$clone/datasets/sample/calls.jsonl" > "$work/sample.jsonl"; fi
train_args=$([ "$steps" = recipe ] || echo "--max-steps $steps")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The user's command, with a slice of the sample and a few steps; its own fresh .venv, BentoML store and database.
say "make demo (${calls} calls, ${steps} steps, port ${port}); log: ${log}"
env -u VIRTUAL_ENV CALLQA_HOME="$work/home" \
    make -C "$clone" demo PORT="$port" SAMPLE="$work/sample.jsonl" TRAIN_ARGS="$train_args" > "$log" 2>&1 &
demo_pid=$!

# Wait for the printed curl and a ready server; the demo must not exit on the way.
deadline=$((SECONDS + ${SMOKE_TIMEOUT:-900}))
until grep -q "^Review UI:" "$log" && curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
    kill -0 "$demo_pid" 2>/dev/null || { wait "$demo_pid" || true; fail "make demo exited before serving"; }
    [ $SECONDS -lt $deadline ] || fail "not serving after ${SMOKE_TIMEOUT:-900} s"
    sleep 2
done
grep -q "multilingual-e5-small-zh: built" "$log" || fail "make demo did not pull the encoder (is ../shared visible?)"
say "serving; running the curl that make demo printed"

# The printed command, exactly: from the line after "Score a call" to the line before "Review UI".
command=$(awk '/^Score a call/ {on = 1; next} /^Review UI:/ {on = 0} on && NF' "$log")
[ -n "$command" ] || fail "make demo printed no curl command"
status=$(bash -c "$command -o '$work/response.json' -w '%{http_code}'")
[ "$status" = 200 ] || fail "the printed curl answered $status: $(head -c 600 "$work/response.json")"
python3 - "$work/response.json" "$clone/configs/schemas/callcenter.yaml" "$clone/datasets/examples/demo-call.json" <<'EOF' || fail "the response lacks heads or the scorecard"
import json, re, sys
response = json.load(open(sys.argv[1], encoding="utf-8"))
heads = re.findall(r"^  (\w+):\s*$", open(sys.argv[2], encoding="utf-8").read().split("heads:", 1)[1], re.M)
scored = response["results"][0]["scores"]
missing = [h for h in heads if h not in scored]
assert heads and not missing, f"heads missing from the response: {missing}"
card = response["results"][0]["scorecard"]
assert card["name"] == "default" and card["max_total"] == 100 and card["sections"], f"no scorecard: {card}"
# The headline feature shows on the printed call: a deduction with its exact span in the call's text.
call = json.load(open(sys.argv[3], encoding="utf-8"))
spans = [(d["title"], d["text"]) for s in card["sections"] for i in s["items"] for d in i["deductions"]
         if d.get("text") and call["turns"][d["turn"]]["text"][d["start"]:d["end"]] == d["text"]]
assert any(title == "推诿" for title, _ in spans), f"the printed call shows no deduction with its span: {spans}"
print(f"smoke: 200 with every head ({', '.join(heads)}) and the scorecard ({card['total']:g}/100, "
      f"{len(spans)} deductions with spans, e.g. {spans[0]}); stored: {response.get('stored')}")
EOF

say "stopping the server"
stop_demo
left=$(smoke_pids)
[ -z "$left" ] || fail "processes left behind: $(ps -o pid=,args= -p "$(echo $left | tr ' ' ,)")"
if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then fail "something still listens on port $port"; fi
say "passed: fresh clone → pull → train → evaluate → export → serve → curl 200, nothing left running"
echo "smoke: 1 passed, 0 failed"
