"""Print the GPU runs' training records in a few lines each (for the call's output tail)."""
import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
for record in sorted(root.glob("*/kgalign-finetune.json")):
    d = json.loads(record.read_text())
    name = record.parent.name
    before, after = d.get("before") or {}, d.get("after") or {}
    print(f"{name}: steps {d.get('steps')} in {d.get('seconds')} s, best step {d.get('best_step')}, stopped {d.get('stopped')}; "
          f"AUC {before.get('auc')} -> {after.get('auc')}, best F1 {before.get('best_f1')} -> {after.get('best_f1')} at p >= {after.get('best_threshold')}")
    print("   history:", " ".join(f"{h.get('step')}:{h.get('auc')}/{h.get('best_f1')}/{h.get('train_loss')}" for h in d.get("history", [])))
    print("   AUC by source:", after.get("auc_by_source"))
