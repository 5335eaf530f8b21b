#!/usr/bin/env bash
# Re-measure every figure the README shows, one after the other, into benchmarks/results/.
# Run it on a quiet machine (nothing else busy: the speed figures are ratios of medians, the
# language model trains for a wall-clock budget): about 40 minutes on 2 cores.
#
#   bash benchmarks/readme_figures.sh            # everything
#   bash benchmarks/readme_figures.sh bench demo # some of: demo bench variants memory
#                                                #   compile classify forecast shakespeare
#                                                #   (ett: ETTh1, about an hour on quiet cores)
set -euo pipefail
cd "$(dirname "$0")/.."
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # not realpath: a
python=$(absolute "${PYTHON:-.venv/bin/python}")  # venv's python is a link to the base one
rnnkit=$(absolute "${RNNKIT:-.venv/bin/rnnkit}")
data=$(absolute "${SHARED_DATA:-../shared/data}")
work=$(mktemp -d -t rnnkit-figures-XXXX)
record() { "$python" benchmarks/record.py "$@"; }
wanted=${*:-demo bench variants memory compile classify forecast shakespeare ett}

for figure in $wanted; do
    case $figure in
    demo)
        record demo --json-output "$work/demo/results.json" -- "$rnnkit" demo --out "$work/demo" ;;
    bench)
        record bench --json-output "$work/bench.json" -- \
            "$rnnkit" bench --T 50 --repeats 7 --json "$work/bench.json" ;;
    variants)
        record variants --json-output "$work/variants.json" -- \
            "$rnnkit" bench --variants --json "$work/variants.json"
        "$python" benchmarks/gru_rnn_variants.py --sizes 32x256 ;;
    memory)
        "$python" benchmarks/memory.py ;;
    compile)
        "$python" benchmarks/compile_speed.py ;;
    classify)
        record classify_nsmc_cli -- bash -c "
            set -e; cd $work
            $rnnkit classify train $data/nsmc-train.tsv --members 1 --pooling mean-max --dropout 0.3 \
                --embedding-dropout 0.1 --min-count 2 --time-budget 60 --eval-every 200 \
                --out runs/nsmc --no-progress
            $rnnkit classify eval runs/nsmc $data/nsmc-test.tsv
            printf '진짜 최고의 영화입니다\n시간 아깝다 돈 아깝다\n' | $rnnkit classify predict runs/nsmc -"
        ;;
    forecast)
        record forecast_air_cli -- bash -c "
            set -e; cd $work
            $rnnkit forecast train $data/AirPassengers.csv --target '#Passengers' --horizon 12 \
                --lookback 24 --val-size 12 --test-size 12 --head seq2seq --window-norm mean \
                --scale none --quantiles 0.1,0.5,0.9 --epochs 150 --schedule constant \
                --out runs/air --no-progress
            $rnnkit forecast backtest runs/air
            $rnnkit forecast predict runs/air --horizon 6"
        "$python" benchmarks/forecast_airpassengers.py --seeds 1,2,3 --out "$work/air" ;;
    ett)
        "$python" benchmarks/forecast_ett.py --data "$data/ETTh1.csv" --threads 1 --jobs 2 ;;
    shakespeare)
        "$python" benchmarks/shakespeare.py --work "$work/shakespeare" ;;
    *)
        echo "unknown figure $figure" >&2; exit 2 ;;
    esac
done
echo "run folders in $work"
