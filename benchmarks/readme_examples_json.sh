#!/usr/bin/env bash
# Runs the README's --json examples (eval, eval --cases, optimize, target, sensitivity,
# grid, sweep, validate, list, show) and writes one JSON file per example into DIR.
# Used to check that a refactor changes no output: run it before and after, then
# `diff -r BEFORE AFTER` (timings in "seconds" and grid "info.devices" differ by nature).
# Usage: bash benchmarks/readme_examples_json.sh DIR   (with the project's venv active)
set -u
out=${1:?usage: $0 DIR}
mkdir -p "$out"
export JAX_PLATFORMS=cpu
cases="$out/cases.csv"
printf 'model,system,tp,ep,batch,context\ndeepseek-r1,hgx-b200-8,8,8,1,4096\nllama-3.1-70b,hgx-h100-8,8,1,4,8192\n' > "$cases"
run() { name=$1; shift; tpsopt "$@" --json > "$out/$name.json" 2> "$out/$name.err"; echo "$name rc=$?" >> "$out/rc.txt"; }
: > "$out/rc.txt"
run eval eval --model deepseek-r1 --system hgx-b200-8 --tp 8 --ep 8 --batch 1 --context 4096
run eval_cal eval --model deepseek-r1 --system hgx-b200-8 --tp 8 --ep 8 --batch 1 --context 4096 --mode calibrated
run eval_cases eval --cases "$cases"
run optimize optimize
run optimize_reticle optimize --system reticle-die --chips 4096
run target target --utps 10000 --system reticle-die --chips 4096
run target_chips target --utps 2000 --knob chips --system reticle-die --chips-max 8192
run sens sensitivity --model llama-3.1-70b --system hgx-h100-8
run grid grid --model kimi-k2.5 --system gb200-nvl72 --batch 1,8,64 --top 10 --pareto --axis tiers.nvlink.hop_latency_s=1e-7,3e-7,1e-6
run sweep sweep --model kimi-k2.5 --system reticle-die --chips-max 4096 --param latency_scale --range 0.1:10 --log
run validate validate --grade A,B
run list_models list models
run show show kimi-k2.5
cat "$out/rc.txt"
