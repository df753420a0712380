set -e
cd "$(dirname "$0")/../.."
run() { name=$1; shift; /usr/bin/time -f "$name %e s" python -m earlylin.verify --quick --no-cache --no-plot --quiet --out ${GOLDEN_OUT:-/tmp/golden}/$name "$@" > ${GOLDEN_OUT:-/tmp/golden}/$name.log 2>&1 || echo "$name rc=$?"; }
run two_layer --layers both --d 50 --step reference
run two_layer_ntklin --layers both --d 20 --ntk-lin --seeds 0 1 --step reference
run two_layer_second --layers second --d 20 --activation relu --target norm --step reference
run cnn1d --arch cnn1d --d 20 --filter 5 --step reference
run cifar_fc --dataset cifar --arch fc
run cifar_cnn --dataset cifar --arch cnn
run cifar_fc_fitted --dataset cifar --arch fc --linear fitted --ntk-model --activation relu --cifar-norm coordinate
# the golden: argv, kind and per run its config, per_seed and summary, without what differs between two runs of the
# same code on one machine (wall times, the cache's bookkeeping, the code fingerprint)
python - "${GOLDEN_OUT:-/tmp/golden}" ${GOLDENS:-two_layer two_layer_ntklin two_layer_second cnn1d cifar_fc cifar_cnn cifar_fc_fitted} <<'PY'
import json, sys
out = sys.argv[1]
for name in sys.argv[2:]:
    rec = json.load(open(f"{out}/{name}/record.json"))
    drop = {"cache_hits", "code_fingerprint", "compute_wall_time_s", "not_cached", "wall_time_s", "cached"}
    runs = [{"config": r["config"], "per_seed": {s: {k: v for k, v in m.items() if k not in drop}
                                                  for s, m in r["per_seed"].items()},
             "summary": {k: v for k, v in r["summary"].items() if k not in drop}} for r in rec["runs"]]
    json.dump({"argv": rec["argv"], "kind": rec["kind"], "runs": runs}, open(f"tests/golden/{name}.json", "w"),
              separators=(",", ":"))
PY
echo ALLDONE
