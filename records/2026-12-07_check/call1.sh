#!/bin/bash
# call 1, a fresh machine: the GPU check at the commit $COMMIT names, nothing else (its runs and the table
# come back under $OUT).
#   COMMIT=<sha> bash records/2026-12-07_check/call1.sh
source records/2026-12-07_answer/common.sh
timeout $(left) python3 records/gpu_check.py --data /tmp/wiki --name wiki --commit "$COMMIT" \
  --logs /tmp/res/gpu_check > $OUT/gpu_check.txt 2>&1
cut -c1-300 $OUT/gpu_check.txt
cp records/gpu_checks.md $OUT/
tar czf $OUT/gpu_check_logs.tgz -C /tmp/res gpu_check
echo "check ended at $(( $(date +%s) - start )) s"
