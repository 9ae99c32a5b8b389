#!/bin/bash
# Call C on the same warm GPU machine: from the adapter of call B, go on training on the
# rebalanced questions of the whole recipe (Abt-Buy included) for 3.4 minutes, and send it back.
ST=/tmp/st; export PYTHONPATH=$PWD:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1; t0=$(date +%s)
timeout 250 python3 $ST/kg.py finetune --questions $ST/full-r.jsonl.gz -o /tmp/ad/full-l --init-adapter /tmp/ad/loo-abt \
  --batch-size 32 --token-budget 16384 --minutes 3.4 --max-val 240 --eval-every 0 --save-every 25 --quiet > /tmp/ad/full-l.log 2>&1
echo "rc $? after $(( $(date +%s) - t0 )) s"; tail -n 24 /tmp/ad/full-l.log; cp /tmp/ad/full-l.log $OUT/
[ -f /tmp/ad/full-l/adapter_model.safetensors ] && tar -czf $OUT/ad-full-l.tgz --exclude='checkpoint-*' --exclude='best' -C /tmp/ad full-l; ls -la $OUT
