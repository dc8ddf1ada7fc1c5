#!/usr/bin/env bash
# The GPU figures in one lease: run from the repository root on a CUDA machine whose Python has
# torch but not photoseek's other dependencies (they come as wheels in .whl/, see bench/README).
#   bash bench/gpu_session.sh [STEP ...]     steps: generation, tests, indexing (default: all)
# Logs, JSON and the RESULTS.md sections land in $OUT (or bench/out without one).
set -u
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
steps=${*:-generation tests indexing}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/log.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/log.txt"
start=$(wc -l < bench/RESULTS.md)
for step in $steps; do
  echo "=== $step $(date -u +%H:%M:%S)" | tee -a "$OUT/log.txt"
  case $step in
    generation) python3 -m bench.generation --device cuda --sizes 256,512 --steps 300 ;;
    tests) python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_reindex.py tests/test_decode.py ;;
    indexing) python3 -m bench.run --device cuda --only decode indexing --corpora 0.3mp 12mp ;;
    *) python3 -m "bench.$step" ;;
  esac 2>&1 | tee -a "$OUT/log.txt"
done
tail -n +"$((start + 1))" bench/RESULTS.md > "$OUT/results-section.md"
tar -C bench -cf "$OUT/json.tar" out --exclude='*.tar' --exclude='log.txt' 2>/dev/null
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$OUT/log.txt"
