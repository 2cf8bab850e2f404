#!/bin/bash
# call 2 (the same machine, still warm from call 1, 5 device minutes left): the check's families that call 1
# did not reach, with the CUDA tests beside them and then the rehearsal, in the time left. Run as one command
# line from the repository root (a first try that sourced common.sh from the command line stopped at once:
# its cd follows $0, which was bash there)
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=16
timeout 285 python3 records/gpu_check.py --data /tmp/wiki --name wiki --logs /tmp/res/gpu_check2 \
  --families byte_targets,everything,ssm_pool4 > $OUT/gpu_check2.txt 2>&1
cut -c1-400 $OUT/gpu_check2.txt
cp records/gpu_checks.md $OUT/
tar czf $OUT/gpu_check2_logs.tgz -C /tmp/res gpu_check2
