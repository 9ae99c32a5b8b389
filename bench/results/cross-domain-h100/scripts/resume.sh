#!/bin/bash
set -u
export PYTHONPATH=/tmp/kgsrc:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
ST=/tmp/st; t0=$(date +%s)
for n in full loo-abt-buy; do
  OMP_NUM_THREADS=6 python3 $ST/kg.py finetune --questions $ST/$n.jsonl.gz -o /tmp/ad/$n --resume --batch-size 32 --token-budget 4096 --minutes ${MINUTES:-5.5} --quiet > /tmp/ad/$n-resume.log 2>&1 < /dev/null &
done
wait; echo "trained in $(( $(date +%s) - t0 )) s"
for n in full loo-abt-buy; do tail -n 22 /tmp/ad/$n-resume.log; tar -czf $OUT/ad2-$n.tgz -C /tmp/ad --exclude='checkpoint-*' --exclude='best' $n $n.log $n-resume.log; done
rm -rf /tmp/pairs2; mkdir -p /tmp/pairs2
go() { OMP_NUM_THREADS=2 python3 $ST/kg.py pairs $ST/data/$3/test.txt --valid $ST/data/$3/valid.txt --judge local --adapter /tmp/ad/$2 -o /tmp/pairs2/$1 --quiet > /tmp/pairs2/$1.log 2>&1; }
for d in deepmatcher_abt_buy ditto_wdc_computers ditto_wdc_cameras ditto_wdc_watches ditto_wdc_shoes ditto_beer; do go full-$d full $d & done
go looabt-deepmatcher_abt_buy loo-abt-buy deepmatcher_abt_buy &
wait; echo "all done in $(( $(date +%s) - t0 )) s"
python3 -c "
import json, pathlib
out = {p.name: json.loads((p/'metrics.json').read_text()) for p in sorted(pathlib.Path('/tmp/pairs2').iterdir()) if (p/'metrics.json').is_file()}
json.dump(out, open('$OUT/pairs2-metrics.json','w'), indent=1)
for k,v in out.items(): print(k, {x: v.get(x) for x in ('precision','recall','f1','llm_questions')})"
tar -czf $OUT/pairs2-runs.tgz --exclude=judge-cache.sqlite -C /tmp pairs2
