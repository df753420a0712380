set -e
cd "$(dirname "$0")/../.."
run() { name=$1; shift; /usr/bin/time -f "$name %e s" python -m earlylin.verify --quick --no-cache --no-plot --quiet --out ${GOLDEN_OUT:-/tmp/golden}/$name "$@" > ${GOLDEN_OUT:-/tmp/golden}/$name.log 2>&1 || echo "$name rc=$?"; }
run two_layer --layers both --d 50
run two_layer_ntklin --layers both --d 20 --ntk-lin --seeds 0 1
run two_layer_second --layers second --d 20 --activation relu --target norm
run cnn1d --arch cnn1d --d 20 --filter 5
run cifar_fc --dataset cifar --arch fc
run cifar_cnn --dataset cifar --arch cnn
run cifar_fc_fitted --dataset cifar --arch fc --linear fitted --ntk-model --activation relu --cifar-norm coordinate
echo ALLDONE
