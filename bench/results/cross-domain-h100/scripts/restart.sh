#!/bin/bash
cp -r .dev/c/. /tmp/st/
for p in $(pgrep -f "python3 /tmp/st/kg.py finetune"); do kill $p; done; sleep 4
export PYTHONPATH=/tmp/kgsrc:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
rm -rf /tmp/ad; mkdir -p /tmp/ad
for n in full loo-abt-buy loo-beer loo-kg; do
  OMP_NUM_THREADS=3 setsid nohup python3 /tmp/st/kg.py finetune --questions /tmp/st/$n.jsonl.gz -o /tmp/ad/$n --batch-size 32 --token-budget 4096 --minutes 7 --quiet > /tmp/ad/$n.log 2>&1 < /dev/null &
done
sleep 50; ls -la /tmp/st
for f in /tmp/ad/*.log; do echo "== $f"; tail -c 400 $f; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; nvidia-smi --query-compute-apps=pid,used_memory --format=csv
