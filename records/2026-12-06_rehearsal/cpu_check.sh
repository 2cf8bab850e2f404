#!/bin/bash
# CPU (no GPU): the layouts' gap with the front end through the vocabulary table, the embedding tables in
# bfloat16 as on CUDA (chunked.py's CPU_BF16): the smoke model with MoT + bigram and the baseline, one
# process (twice) against 2 gloo ranks, and one process with the table's backward split as 2 ranks split
# it; weights after steps 1 and 2 compared tensor by tensor (features.py's table), then the split run
# against the plain one, the cross-attention output projection's gradient spectrum; then that projection
# between the layouts with float32 tables, and with the front end per token
cd "$(dirname "$0")/../.."
out=${1:-/tmp/cpu_check}
rm -rf "$out"
export OMP_NUM_THREADS=1 CPU_BF16=1
S="--smoke --stop_step=2 --save_every=1 --val_loss_every=0 --global_batch_seqs=4 --warmup_steps=0"
MB="--use_mot=1 --mot_vocab_table=1 --bigram_hash_rows=2000"
run() { python records/2026-12-06_rehearsal/chunked.py $S "$@" > /dev/null; }
run $MB --log_dir="$out/one_a_mot_bigram"
run $MB --log_dir="$out/one_b_mot_bigram"
run --log_dir="$out/one_base"
CHUNKS=2 run $MB --log_dir="$out/chunks2_mot_bigram"
torchrun --standalone --nproc_per_node=2 records/2026-12-06_rehearsal/chunked.py $S $MB \
  --log_dir="$out/r2_mot_bigram" > /dev/null
torchrun --standalone --nproc_per_node=2 records/2026-12-06_rehearsal/chunked.py $S --log_dir="$out/r2_base" > /dev/null
cd records/2026-12-06_rehearsal
python - "$out" <<'PY'
import sys
from pathlib import Path
import features
out = Path(sys.argv[1])
for step in (1, 2):
    features.compare(out, step, rows=4)
plain, split = (features.weights(out, name, 2) for name in ("one_a_mot_bigram", "chunks2_mot_bigram"))
gaps = features.gaps(plain, split)
print("\nafter step 2, one process against one process with the table's backward in 2 blocks:")
for key in sorted(gaps, key=gaps.get, reverse=True)[:3]:
    print(f"  {key}: {gaps[key]:.2e}")
PY
cd ../..
SPECTRUM=1 python records/2026-12-06_rehearsal/chunked.py $S $MB --log_dir="$out/spectrum" | grep "singular"
# the same projection after step 2, one process against 2 ranks: float32 tables, and the front end per token
gap() {
  python - "$out" "$1" "$2" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "records/2026-12-06_rehearsal")
import features
out, one, two = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
key = "byte_front_end.token_byte_cross_attn.c_proj.weight"
print(f"{one} vs {two}, after step 2, {key}: {features.gaps(*(features.weights(out, n, 2) for n in (one, two)))[key]:.2e}")
PY
}
CPU_BF16=0 run $MB --log_dir="$out/one_f32"
CPU_BF16=0 torchrun --standalone --nproc_per_node=2 records/2026-12-06_rehearsal/chunked.py $S $MB \
  --log_dir="$out/r2_f32" > /dev/null
gap one_f32 r2_f32
run $MB --mot_vocab_table=0 --log_dir="$out/one_per_token"
torchrun --standalone --nproc_per_node=2 records/2026-12-06_rehearsal/chunked.py $S $MB --mot_vocab_table=0 \
  --log_dir="$out/r2_per_token" > /dev/null
gap one_per_token r2_per_token
