#!/bin/bash
# call 4, a fresh machine: the MLP's products over tilings (kernels alone), then the step of this commit against
# 0ffb26d's train_gpt.py (in the ignored .devdata/at0ffb) in issue 36's three regimes, in the same command:
# one rank of 8 at early and at late windows, one micro-step per step, 8 micro-steps per step.
#   LIMIT=585 bash records/2026-12-07_step/call4.sh
source records/2026-12-07_answer/common.sh
timeout 200 python3 records/2026-12-07_step/mlp_kernels.py > $OUT/mlp_kernels.txt 2>&1
grep "^|" $OUT/mlp_kernels.txt
OLD=.devdata/at0ffb
bench() {  # bench NAME ARGS...: this tree and 0ffb26d's, one after the other, into $OUT/NAME.txt
  local name=$1; shift
  [ $(left) -gt 120 ] || { echo "$name: not reached"; return; }
  timeout $(left) $BENCH --variants baseline --against $OLD --log_dir /tmp/res/$name "$@" > $OUT/$name.txt 2>&1
  echo "== $name at $(( $(date +%s) - start )) s"; grep -A2 "this tree / at0ffb" $OUT/$name.txt | tail -1
}
bench ranks8 --timeout 320 --ranks 8
bench ranks8_late --ranks 8 --extra=--num_iterations=40
bench micro1 --micro_steps 1 --steps 150
bench micro8 --micro_steps 8 --steps 16 --timeout 200
tar czf $OUT/logs.tgz -C /tmp/res .
echo "ended at $(( $(date +%s) - start )) s"
