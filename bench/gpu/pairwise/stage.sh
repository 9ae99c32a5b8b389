#!/bin/bash
# Call A on the GPU machine: the first 56 MiB of the SmolLM2 GGUF and two wheels go to /tmp
# (a call carries at most 64 MiB); check the software and the GPU.
set -euo pipefail
mkdir -p /tmp/st && cp .dev/a/gg.aa /tmp/st/
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev/a/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc; free -g | head -2
PYTHONPATH=$PWD:/tmp/site python3 -c "import torch,transformers,peft,gguf,kgalign.cli.main;print('torch',torch.__version__,'transformers',transformers.__version__,'peft',peft.__version__,'cuda',torch.cuda.is_available())"
