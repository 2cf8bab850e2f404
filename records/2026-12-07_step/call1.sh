#!/bin/bash
# call 1, a fresh machine: the MLP's Triton products against their float64 reference, then the step of this
# commit against 0ffb26d's train_gpt.py (copied to the ignored .devdata/at0ffb) in the same command: one rank
# of 8, then one micro-step per step; then FlexAttention's kernel options as one rank of 8 at the late
# windows (the window schedule of a 40-step run), this commit alone; 8 micro-steps per step last.
#   LIMIT=585 bash records/2026-12-07_step/call1.sh
source records/2026-12-07_answer/common.sh
timeout 150 python3 -m pytest -q -m cuda -p no:cacheprovider -k mlp tests/test_model.py > $OUT/mlp_test.txt 2>&1
tail -3 $OUT/mlp_test.txt
OLD=.devdata/at0ffb
timeout $(left) $BENCH --timeout 320 --ranks 8 --variants baseline --against $OLD --log_dir /tmp/res/ranks8 > $OUT/ranks8.txt 2>&1
grep -E "^baseline|^\|" $OUT/ranks8.txt | cut -c1-200
echo "ranks8 ended at $(( $(date +%s) - start )) s"
timeout $(left) $BENCH --micro_steps 1 --steps 150 --variants baseline --against $OLD --log_dir /tmp/res/micro1 > $OUT/micro1.txt 2>&1
grep -E "^baseline|^\|" $OUT/micro1.txt | cut -c1-200
echo "micro1 ended at $(( $(date +%s) - start )) s"
for opts in "" USE_TMA=1 ROWS_GUARANTEED_SAFE=1 BLOCK_N=128,num_stages=2 BLOCK_M1=64,BLOCK_N1=64,BLOCK_M2=64,BLOCK_N2=64; do
  [ $(left) -gt 110 ] || break
  echo "== flex_kernel_options='$opts'" >> $OUT/flex.txt
  timeout $(left) $BENCH --ranks 8 --variants baseline --log_dir /tmp/res/flex_${opts//[=,]/_} \
    --extra="--num_iterations=40 --flex_kernel_options=$opts" >> $OUT/flex.txt 2>&1
done
grep -E "^==|^baseline" $OUT/flex.txt | cut -c1-200
echo "flex ended at $(( $(date +%s) - start )) s"
[ $(left) -gt 150 ] && timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --name wiki --micro_steps 8 \
  --steps 16 --profile_steps 1 --timeout 200 --extra=--num_iterations=400 --variants baseline --against $OLD \
  --log_dir /tmp/res/micro8 > $OUT/micro8.txt 2>&1
grep -E "^baseline|^\|" $OUT/micro8.txt | cut -c1-200
tar czf $OUT/logs.tgz -C /tmp/res .
echo "ended at $(( $(date +%s) - start )) s"
