#!/bin/bash
# call 5, the machine of call 4 still warm: one micro-step per step on the record's schedule (1770 steps, steps
# 21-150), record 21's code (patched by record21.py into the ignored .devdata/record21/) beside this commit's
# train_gpt.py and 0ffb26d's, in the same command: issue 36's first ratio; then FlexAttention's options as one rank
# of 8 at the late windows, as time allows.
#   python records/2026-12-07_step/record21.py patch <modded-nanogpt 5ad9b36>/train_gpt.py .devdata/record21/train_gpt.py
#   LIMIT=585 bash records/2026-12-07_step/call5.sh
source records/2026-12-07_answer/common.sh
REPO=$PWD
(cd /tmp && STOP_STEP=150 timeout 360 torchrun --standalone --nproc_per_node=1 $REPO/.devdata/record21/train_gpt.py \
  > $OUT/record21.txt 2>&1)
echo "record 21 at $(( $(date +%s) - start )) s: $(python3 records/2026-12-07_step/record21.py median $OUT/record21.txt)"
timeout $(left) $BENCH --micro_steps 1 --steps 150 --variants baseline --against .devdata/at0ffb \
  --extra=--num_iterations=1770 --log_dir /tmp/res/micro1_1770 > $OUT/micro1_1770.txt 2>&1
grep -E "^baseline|^\| baseline" $OUT/micro1_1770.txt | cut -c1-200
for opts in ROWS_GUARANTEED_SAFE=1 BLOCK_M1=64,BLOCK_N1=64,BLOCK_M2=64,BLOCK_N2=64 BLOCK_N=128,num_stages=2; do
  [ $(left) -gt 110 ] || break  # FlexAttention's options at the late windows, against call 4's ranks8_late
  echo "== flex_kernel_options='$opts'" >> $OUT/flex.txt
  timeout $(left) $BENCH --ranks 8 --variants baseline --log_dir /tmp/res/flex_${opts//[=,]/_} \
    --extra="--num_iterations=40 --flex_kernel_options=$opts" >> $OUT/flex.txt 2>&1
done
grep -E "^==|^baseline" $OUT/flex.txt | cut -c1-200
tar czf $OUT/logs_call5.tgz -C /tmp/res micro1_1770 $(cd /tmp/res && ls -d flex_* 2>/dev/null)
echo "ended at $(( $(date +%s) - start )) s"
