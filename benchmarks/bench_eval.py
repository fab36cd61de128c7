"""Single-evaluation latency of the cost model and of its gradient (issue 4).

Prints JSON: import + first-compile time (in a fresh process; with the options the CLI
uses, ``search.defaults.eval_one``, and with plain ``jax.jit`` as the baseline), the wall
time of a cold ``tpsopt eval --json`` (persistent cache off), warm time of one jitted
``decode_step`` for Kimi-K2.5 on GB200 NVL72, warm time of ``jax.grad`` of UTPS with
respect to every float leaf of the system and the parallel degrees (reverse mode,
compiled with ``search.jit.FAST_COMPILE_OPTIONS`` on CPU), and the ratio. Targets:
< 1 ms warm, gradient ≤ 3x forward, import + first compile < 3 s.

    python benchmarks/bench_eval.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

FIRST = r"""
import time
t0 = time.perf_counter()
import jax
from costmodel.decode import decode_step
from costmodel.specs import Parallelism, Workload
import hardware_db as db
from search.jit import jit_fast_compile
import sys
t1 = time.perf_counter()
m, p = db.load_model("kimi-k2.5"); s = db.load_system("gb200-nvl72")
jit = jit_fast_compile if sys.argv[1] == "fast" else jax.jit
r = jit(decode_step)(m, p, s, Parallelism(8.0, 1.0, 1.0, 8.0, 1.0, 1.0), Workload())
jax.block_until_ready(r)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def main() -> None:
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _common import best_of, emit, meta

    import hardware_db as db
    from costmodel.decode import decode_step
    from costmodel.specs import Parallelism, Workload
    from search.jit import jit_fast_compile

    first = {}
    for how in ("fast", "default"):
        cmd = [sys.executable, "-c", FIRST, how]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        first[how] = [float(x) for x in out.stdout.split()]
    t_import, t_first = first["fast"]
    env = dict(os.environ, TPSOPT_CACHE="off")
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "search.cli", "eval", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    t_cli = time.perf_counter() - t0

    m, p = db.load_model("kimi-k2.5")
    s = db.load_system("gb200-nvl72")
    par = Parallelism(16.0, 1.0, 4.0, 1.0, 64.0, 1.0)
    wl = Workload(batch=1.0, context_tokens=8192.0)

    def utps(system, par):
        return decode_step(m, p, system, par, wl).utps

    # same inputs for both: system and split traced, model/precision/workload constant
    fwd = jax.jit(utps)

    grad = jit_fast_compile(jax.grad(utps, argnums=(0, 1)))
    t0 = time.perf_counter()
    jax.block_until_ready(grad(s, par))
    t_grad_compile = time.perf_counter() - t0
    t_fwd = best_of(lambda: fwd(s, par), repeats=7, number=200)
    t_grad = best_of(lambda: jax.tree.leaves(grad(s, par))[0], repeats=7, number=200)
    g = grad(s, par)
    finite = all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
    emit(
        {
            "benchmark": "bench_eval",
            "scenario": "kimi-k2.5 on gb200-nvl72, attn_tp=16 kvp=4 moe_tp=64, batch 1, "
            "context 8192",
            "import_s": round(t_import, 3),
            "first_compile_and_eval_s": round(t_first, 3),
            "import_plus_first_compile_s": round(t_import + t_first, 3),
            "first_compile_and_eval_plain_jit_s": round(first["default"][1], 3),
            "cold_cli_eval_s": round(t_cli, 3),
            "warm_eval_ms": round(t_fwd * 1e3, 4),
            "warm_grad_ms": round(t_grad * 1e3, 4),
            "grad_over_forward": round(t_grad / t_fwd, 2),
            "grad_compile_s": round(t_grad_compile, 2),
            "grad_inputs": len(jax.tree.leaves((s, par))),
            "grad_finite": finite,
            "targets": {
                "warm_eval_ms": "< 1",
                "grad_over_forward": "<= 3",
                "import_plus_first_compile_s": "< 3",
            },
            **meta(),
        }
    )


if __name__ == "__main__":
    main()
