r"""Fast evaluation for scripts: one configuration per call, or a list at once.

::

    from search.evaluate import evaluate, evaluate_many

    r = evaluate("kimi-k2.5", "gb200-nvl72", parallelism={"tp": 8, "ep": 8}, batch=1)
    r.utps, r.tpot_s, r.fits, r.breakdown.comm_latency

    rs = evaluate_many([{"parallelism": (8, 1, 1, 8, 1, 1), "batch": b} for b in (1, 8, 64)])
    rs.utps  # numpy array, one entry per configuration, in input order

Both return the values of :func:`costmodel.decode.decode_step` (same dtype: JAX's
default float, float32 unless ``jax_enable_x64``), computed by one program per record
**structure** (the tier topologies and names of the system), shared by every model and
system of that structure: the numbers of the records are data (a traced array), never
compile-time constants, so a model or system never seen before reuses the program.

How a call stays cheap:

* names are resolved once (:func:`search.scenario.scenario`, cached per argument tuple)
  and the records ``(model, precision, system, mode)`` kept as **one flat array**;
  records passed as objects are flattened once per object (cached by identity);
* where a C compiler is found, :func:`evaluate` runs **native code**
  (:mod:`search.native`: the cost model's jaxpr emitted as one C function, compiled once
  per structure and dtype, cached on disk): the records' address and the 12 degrees and
  workload numbers in, the packed results out, ~5–10 µs of arithmetic and a few µs of
  Python per call. Its values equal the XLA program's to float rounding (XLA has its
  own ``exp``/``log``/``pow``); ``fits`` and ``reason`` are the same;
* otherwise (no compiler, ``TPSOPT_NATIVE=off``) the XLA program: it takes one array
  ``[records…, 6 degrees, 6 workload numbers]`` and returns one array of results (no
  pytree flattening of ~100 leaves per call), exactly ``decode_step``'s jitted values;
  the input row is a template per records and dtype (only the 12 numbers are written
  per call), passed in parts of at most :data:`SEQUENTIAL_BYTES` so that XLA:CPU runs
  the program's ~250 small kernels in sequence on the calling thread rather than on its
  thread pool; what bounds such a call is XLA:CPU's cost per kernel (~0.3 µs each,
  measured; the cost model's ~2,900 scalar operations compile to ~250 kernels, split
  where a divide or another expensive result has several users);
* :func:`evaluate_many` groups the rows by records, gathers the degrees and workload
  numbers into ``[n, 12]`` arrays and runs one ``vmap`` per group with the records
  unbatched (XLA computes what depends only on them once per call), in chunks of
  :data:`MAX_ROWS` (power-of-two buckets below) so that a handful of programs serve
  every list length; the chunks of a long list go round-robin to every local device
  (``search._devices`` splits the CPU into one device per core), dispatched before
  they are read back, so the devices run at once (same program, same values).

Results: :class:`Result` (Python floats, ``fits`` a bool, ``reason`` an int, ``breakdown``
a :class:`Breakdown` of seconds) and :class:`Results` (the same fields as NumPy arrays).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.decode import Breakdown as _DecodeBreakdown
from costmodel.decode import DecodeResult, decode_step
from costmodel.specs import (
    DEGREES,
    SOL,
    Efficiency,
    ModelSpec,
    Parallelism,
    Precision,
    SystemSpec,
    Workload,
)
from search import native
from search.errors import UserError
from search.jit import jit_fast_compile
from search.stacking import canonical_names

WORKLOAD_FIELDS = ("batch", "context_tokens", "mtp_depth", "acceptance_rate", "overlap")
WORKLOAD_FIELDS = (*WORKLOAD_FIELDS, "moe_imbalance")
"""The six workload numbers, in :class:`~costmodel.specs.Workload` order."""

_RESULT_FIELDS = tuple(f for f in DecodeResult.__dataclass_fields__ if f != "breakdown_s")
_BREAKDOWN_FIELDS = tuple(_DecodeBreakdown.__dataclass_fields__)
N_OUT = len(_RESULT_FIELDS) + len(_BREAKDOWN_FIELDS)


class Breakdown(NamedTuple):
    """Seconds per step by cause (they sum to ``step_time_s``)."""

    compute: float
    weight_read: float
    kv_read: float
    activation: float
    comm_latency: float
    comm_bandwidth: float
    overhead: float


class Result(NamedTuple):
    """One evaluation (the fields of :class:`costmodel.decode.DecodeResult`).

    Floats in SI units; ``fits`` a bool, ``reason`` the violated rules' bits
    (:func:`costmodel.feasibility.explain`); ``breakdown`` a :class:`Breakdown`.
    :class:`Results` has the same fields as NumPy arrays.
    """

    utps: float
    tpot_s: float
    step_time_s: float
    tokens_per_step: float
    system_tps: float
    tps_per_chip: float
    chips: float
    memory_per_chip_bytes: float
    weight_bytes_per_chip: float
    kv_bytes_per_chip: float
    capacity_per_chip_bytes: float
    log_capacity_ratio: float
    fits: bool
    reason: int
    energy_j_per_token: float
    collectives_per_step: float
    breakdown: Breakdown


class Results(NamedTuple):
    """Many evaluations: :class:`Result`'s fields as arrays (input order)."""

    utps: np.ndarray
    tpot_s: np.ndarray
    step_time_s: np.ndarray
    tokens_per_step: np.ndarray
    system_tps: np.ndarray
    tps_per_chip: np.ndarray
    chips: np.ndarray
    memory_per_chip_bytes: np.ndarray
    weight_bytes_per_chip: np.ndarray
    kv_bytes_per_chip: np.ndarray
    capacity_per_chip_bytes: np.ndarray
    log_capacity_ratio: np.ndarray
    fits: np.ndarray
    reason: np.ndarray
    energy_j_per_token: np.ndarray
    collectives_per_step: np.ndarray
    breakdown: Breakdown

    def __len__(self) -> int:  # noqa: D105 - number of configurations, not of fields
        return len(self.utps)

    def row(self, i: int) -> Result:
        """Configuration ``i`` as a :class:`Result`."""
        vals = [getattr(self, f)[i] for f in _RESULT_FIELDS]
        return _result([*vals, *(getattr(self.breakdown, f)[i] for f in _BREAKDOWN_FIELDS)])


assert Result._fields[:-1] == _RESULT_FIELDS and Breakdown._fields == _BREAKDOWN_FIELDS
_I_FITS, _I_REASON = _RESULT_FIELDS.index("fits"), _RESULT_FIELDS.index("reason")
_NR = len(_RESULT_FIELDS)


def _result(v: list) -> Result:
    v[_I_FITS] = bool(v[_I_FITS])
    v[_I_REASON] = int(v[_I_REASON])
    return Result(*v[:_NR], Breakdown(*v[_NR:]))


def float_dtype() -> np.dtype:
    """JAX's default float dtype now (float64 under ``jax_enable_x64``).

    ``jax.dtypes.canonicalize_dtype`` (~1 µs) rather than ``jnp.zeros(()).dtype``, which
    builds a device array (~150 µs, more than the rest of a call to :func:`evaluate`)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


# --------------------------------------------------------------------------- records


class Records(NamedTuple):
    """``(model, precision, system, mode)`` of one evaluation, resolved."""

    model: ModelSpec
    precision: Precision
    system: SystemSpec
    mode: Efficiency


class Layout(NamedTuple):
    """The static structure of flattened records: the pytree definition and each
    leaf's shape (scalars ``()``; e.g. the kernel-level calibration's launch table is a
    matrix), so a leaf of ``size`` numbers takes ``size`` consecutive entries of the
    flat row. Hashable: programs are cached per layout."""

    treedef: object
    shapes: tuple


class _Flat:
    """Records as one flat float vector per dtype, and their static structure."""

    __slots__ = ("records", "treedef", "n", "_vec", "_call")

    def __init__(self, records: Records):
        self.records = records
        canon = records._replace(system=canonical_names(records.system))
        leaves, treedef = jax.tree.flatten(tuple(canon))
        arrays = [np.asarray(leaf, np.float64) for leaf in leaves]
        self.treedef = Layout(treedef, tuple(a.shape for a in arrays))
        vec = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
        self.n = len(vec)
        self._vec = {np.dtype(np.float64): vec}
        self._call: dict = {}

    def call(self, dtype) -> tuple:
        """``(row, parts, program, native)`` for one evaluation in ``dtype``: a template
        input row ``[n + 12]`` (records filled in), the part bounds (:func:`input_parts`),
        :func:`single_program` and the native function
        (:func:`search.native.row_function`, None where unavailable or with
        ``TPSOPT_NATIVE=off``), cached here, so a call hashes no treedef."""
        key = (dtype, native.ENABLED)
        c = self._call.get(key)
        if c is None:
            row = np.concatenate([self.vec(dtype), np.zeros(12, dtype)])
            parts = input_parts(len(row), dtype.itemsize)
            fn = native.row_function(self.treedef, self.n, dtype) if key[1] else None
            if fn is not None:
                fn = functools.partial(fn, self.vec(dtype).ctypes.data)
            c = self._call[key] = (row, parts, single_program(self.treedef, self.n), fn)
        return c

    def vec(self, dtype) -> np.ndarray:
        v = self._vec.get(dtype)
        if v is None:
            v = self._vec[dtype] = self._vec[np.dtype(np.float64)].astype(dtype)
        return v


_BY_ID: dict[int, tuple[object, _Flat]] = {}
_BY_ID_MAX = 4096


def flat_records(records: Records) -> _Flat:
    """The flat form of ``records`` (cached by the identity of the tuple's records)."""
    key = tuple(map(id, records))
    hit = _BY_ID.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], records, strict=True)):
        return hit[1]
    flat = _Flat(Records(*records))
    if len(_BY_ID) >= _BY_ID_MAX:
        _BY_ID.clear()
    _BY_ID[key] = (tuple(records), flat)
    return flat


@functools.lru_cache(maxsize=1024)
def _resolve_names(model, system, precision, chips, mode, software, latency_scale):
    from search.scenario import scenario

    sc = scenario(
        model,
        system,
        precision=precision,
        chips=chips,
        mode=mode,
        software=software,
        latency_scale=latency_scale,
    )
    return _Flat(Records(sc.model, sc.precision, sc.system, sc.mode))


def resolve(
    model="kimi-k2.5",
    system="gb200-nvl72",
    precision=None,
    mode="sol",
    chips=None,
    software=None,
    latency_scale=1.0,
) -> _Flat:
    """Records for names or records (names resolved once per argument tuple, cached).

    ``model``: a name, alias, Hugging Face id, ``config.json``/TOML path, or a
    :class:`~costmodel.specs.ModelSpec`; ``system``: a name or a
    :class:`~costmodel.specs.SystemSpec`; ``precision``: a recipe name, a
    :class:`~costmodel.specs.Precision`, or None (the model's native recipe; ``Precision()``
    for a record model); ``mode``: ``"sol"``, ``"calibrated"`` or an
    :class:`~costmodel.specs.Efficiency`.
    """
    if (
        isinstance(model, str)
        and isinstance(system, str)
        and (precision is None or isinstance(precision, str))
        and isinstance(mode, str)
    ):
        return _resolve_names(model, system, precision, chips, mode, software, latency_scale)
    import hardware_db as db
    from search.paths import scale_system

    if isinstance(model, ModelSpec):
        m, native = model, Precision()
    else:
        m, native = db.load_model(model)
    if precision is None:
        p = native
    elif isinstance(precision, Precision):
        p = precision
    else:
        p = db.load_precision(precision)
    if isinstance(system, SystemSpec):
        s = system
    else:
        s = _resolve_names("kimi-k2.5", system, None, chips, "sol", None, 1.0).records.system
    if latency_scale != 1.0:
        s = scale_system(s, "latency", latency_scale)
    if isinstance(mode, Efficiency):
        e = mode
    elif mode == "sol":
        e = SOL
    else:
        from hardware_db.calibration import efficiency_for

        if not isinstance(system, str):
            raise UserError("mode calibrated needs a system name", arg="mode")
        e = efficiency_for(db.resolve("systems", system), software)[0]
    return flat_records(Records(m, p, s, e))


# --------------------------------------------------------------------------- programs


def _unpack(x, treedef, n):
    """Records, parallelism and workload from one flat row ``[n + 12]`` (``treedef``:
    a :class:`Layout`, or a plain pytree definition of ``n`` scalar leaves)."""
    if not isinstance(treedef, Layout):
        treedef = Layout(treedef, ((),) * n)
    leaves, i = [], 0
    for shape in treedef.shapes:
        size = math.prod(shape)
        leaves.append(x[i] if shape == () else x[i : i + size].reshape(shape))
        i += size
    m, p, s, e = jax.tree.unflatten(treedef.treedef, leaves)
    par = Parallelism(*(x[n + i] for i in range(6)))
    wl = Workload(*(x[n + 6 + i] for i in range(6)))
    return m, p, s, par, wl, e


def _pack(r: DecodeResult, dtype):
    vals = [getattr(r, f) for f in _RESULT_FIELDS]
    vals += [getattr(r.breakdown_s, f) for f in _BREAKDOWN_FIELDS]
    return jnp.stack([jnp.asarray(v).astype(dtype) for v in vals], axis=-1)


SEQUENTIAL_BYTES = 512
"""Largest buffer (bytes) with which XLA:CPU still runs a program's kernels one after the
other on the calling thread. XLA's ``ThunkExecutor`` runs the ~250 small kernels of one
evaluation sequentially only if every buffer they touch is at most
``execute_sequential_buffer_threshold = 512`` bytes (``xla/backends/cpu/runtime/
thunk_executor.h``); otherwise it schedules them on its thread pool, which for scalar
kernels costs more than the kernels (measured: a float64 input row of 92 leaves,
736 bytes, takes 2× the time of the same row passed as parts of ≤ 512 bytes)."""


def input_parts(size: int, itemsize: int) -> tuple:
    """``(lo, hi)`` bounds splitting an input row of ``size`` elements into parts of at
    most :data:`SEQUENTIAL_BYTES` (one part for a float32 row of ≤ 128 leaves)."""
    per = max(1, SEQUENTIAL_BYTES // itemsize)
    return tuple((lo, min(lo + per, size)) for lo in range(0, size, per))


@functools.cache
def single_program(treedef, n: int):
    """``(*parts) → results [N_OUT]`` for one record structure, the input row
    ``x [n + 12]`` passed as its :func:`input_parts` (``x = concat(parts)``; jitted,
    compiled once per structure, dtype and part count, shared by every model and system
    of that structure)."""

    def one(*parts):
        x = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        return _pack(decode_step(*_unpack(x, treedef, n)), x.dtype)

    return jit_fast_compile(one)


@functools.cache
def row_function(treedef, n: int):
    """The flat-row function ``x [n + 12] → results [N_OUT]`` of one record structure
    (not jitted): what :func:`single_program` compiles (given ``x`` in parts) and what
    :func:`search.interpret.jaxpr_of` traces (``program(treedef, n, dtype)`` evaluates
    it without compiling)."""

    def one(x):
        return _pack(decode_step(*_unpack(x, treedef, n)), x.dtype)

    return one


@functools.cache
def rows_program(treedef, n: int):
    """``x [B, n + 12] → results [B, N_OUT]``: :func:`single_program` vmapped over whole
    rows (records batched too)."""

    def one(x):
        return _pack(decode_step(*_unpack(x, treedef, n)), x.dtype)

    return jit_fast_compile(jax.vmap(one))


@functools.cache
def many_program(treedef, n: int, fused: bool = False):
    """``(records [n], rows [B, 12]) → results [B, N_OUT]``: :func:`single_program`
    vmapped over the rows, records shared (unbatched). ``fused``: ``decode_step``'s
    fused layout (sums as scalar chains that XLA fuses into a few elementwise loops over
    the rows; see :data:`FUSED_ROWS`)."""

    def one(rec, row):
        x = jnp.concatenate([rec, row])
        return _pack(decode_step(*_unpack(x, treedef, n), fused=fused), rec.dtype)

    return jit_fast_compile(jax.vmap(one, in_axes=(None, 0)))


# --------------------------------------------------------------------------- arguments

_ALIASES = {"tp": "attn_tp", "dp": "attn_dp"}


def degrees_of(parallelism) -> tuple:
    """Six floats in :data:`~costmodel.specs.DEGREES` order from a
    :class:`~costmodel.specs.Parallelism`, a mapping (``tp``/``dp`` aliases allowed; missing
    degrees are 1) or a sequence of six numbers."""
    if type(parallelism) is tuple and len(parallelism) == 6:  # the common case, first
        return tuple(map(float, parallelism))
    if isinstance(parallelism, Parallelism):
        return tuple(float(getattr(parallelism, d)) for d in DEGREES)
    if isinstance(parallelism, Mapping):
        d = dict.fromkeys(DEGREES, 1.0)
        for k, v in parallelism.items():
            k = _ALIASES.get(k, k)
            if k not in d:
                raise UserError(
                    f"parallelism: unknown degree {k!r} (allowed {', '.join(DEGREES)})",
                    arg="parallelism",
                )
            d[k] = float(v)
        return tuple(d.values())
    t = tuple(float(v) for v in parallelism)
    if len(t) != 6:
        raise UserError(
            f"parallelism: expected 6 degrees ({', '.join(DEGREES)}), got {len(t)}",
            arg="parallelism",
        )
    return t


@functools.lru_cache(maxsize=4096)
def _workload(batch, context, mtp, acceptance, overlap, imbalance) -> tuple:
    from search.scenario import make_workload

    wl = make_workload(batch, context, mtp, acceptance, overlap, imbalance)
    return tuple(float(getattr(wl, f)) for f in WORKLOAD_FIELDS)


def _default_degrees(flat: _Flat, wl: tuple) -> tuple:
    from search.defaults import complete_parallelism
    from search.scenario import Scenario

    r = flat.records
    sc = Scenario("model", r.model, "precision", r.precision, "system", r.system,
                  Workload(*wl), r.mode)  # fmt: skip
    return degrees_of(complete_parallelism(sc))


# --------------------------------------------------------------------------- API


def evaluate(
    model="kimi-k2.5",
    system="gb200-nvl72",
    parallelism=None,
    *,
    batch=1,
    context=8192,
    mtp=0,
    acceptance=0.0,
    overlap=0.0,
    imbalance=1.0,
    precision=None,
    mode="sol",
    chips=None,
    software=None,
    latency_scale=1.0,
    workload: Workload | None = None,
) -> Result:
    """One configuration, native code where a C compiler is found (see the module
    docstring).

    Args:
      model, system, precision, mode, chips, software, latency_scale: names or records,
        resolved once and cached (see :func:`resolve`; arguments as in
        :func:`search.scenario.scenario`).
      parallelism: a :class:`~costmodel.specs.Parallelism`, a mapping of degrees
        (``{"tp": 8, "ep": 8}``; missing ones are 1) or six numbers in
        :data:`~costmodel.specs.DEGREES` order; None: the default split of
        :func:`search.defaults.complete_parallelism`.
      batch, context, mtp, acceptance, overlap, imbalance: the workload (validated as in
        :func:`search.scenario.make_workload`), or ``workload`` (a record, used as is).

    Returns:
      :class:`Result`: ``decode_step``'s values (native code: to float rounding).
    """
    flat = resolve(model, system, precision, mode, chips, software, latency_scale)
    if workload is not None:
        wl = tuple(float(getattr(workload, f)) for f in WORKLOAD_FIELDS)
    else:
        wl = _workload(batch, context, mtp, acceptance, overlap, imbalance)
    deg = _default_degrees(flat, wl) if parallelism is None else degrees_of(parallelism)
    return evaluate_flat(flat, deg, wl)


def evaluate_flat(flat: _Flat, degrees: Sequence[float], workload: Sequence[float]) -> Result:
    """:func:`evaluate` of already resolved records (:func:`resolve`), six degrees and
    six workload numbers (:data:`WORKLOAD_FIELDS` order): the fastest single call."""
    fn = flat.call(float_dtype())[3]
    if fn is not None:
        return _result(fn((*degrees, *workload)))
    return _result(packed_flat(flat, degrees, workload).tolist())


def evaluate_records(model, precision, system, parallelism, workload, mode=SOL):
    """``decode_step``'s positional arguments (records) → :class:`Result`."""
    flat = flat_records(Records(model, precision, system, mode))
    wl = tuple(float(getattr(workload, f)) for f in WORKLOAD_FIELDS)
    return evaluate_flat(flat, degrees_of(parallelism), wl)


def packed_flat(flat: _Flat, degrees, workload, dtype=None) -> np.ndarray:
    """The packed output row ``[N_OUT]`` (see :func:`decode_result`) of one evaluation."""
    dt = np.dtype(dtype) if dtype is not None else float_dtype()
    row, parts, prog, fn = flat.call(dt)
    if fn is not None:
        return np.asarray(fn((*degrees, *workload)), dt)
    x = row.copy()  # a fresh buffer per call: JAX may read a NumPy input without a copy
    n = flat.n
    x[n : n + 6] = degrees
    x[n + 6 :] = workload
    if len(parts) == 1:
        return np.asarray(prog(x))
    return np.asarray(prog(*(x[lo:hi] for lo, hi in parts)))


def decode_result(packed: np.ndarray) -> DecodeResult:
    """A :class:`~costmodel.decode.DecodeResult` of NumPy values from packed output rows
    ``[..., N_OUT]`` (``fits`` bool, ``reason`` int32)."""
    cols = [packed[..., j] for j in range(N_OUT)]
    cols[_I_FITS] = cols[_I_FITS].astype(bool)
    cols[_I_REASON] = cols[_I_REASON].astype(np.int32)
    kw = dict(zip(_RESULT_FIELDS, cols[:_NR], strict=True))
    bd = _DecodeBreakdown(**dict(zip(_BREAKDOWN_FIELDS, cols[_NR:], strict=True)))
    return DecodeResult(**kw, breakdown_s=bd)


MAX_ROWS = 1 << 12
"""Rows per vmapped call; shorter calls are padded to a power of two (≥ 8), so a few
programs per structure (at most 10) serve every list length. Measured on 2 cores,
Kimi-K2.5 on GB200 NVL72, 32,768 rows, float32 (CPU-time rates, same run): 4,096 or
2,048 rows per call ~4.3e5 rows/s, 32,768 ~2.6e5 (its ``[rows, operators]``
intermediates no longer fit the caches), 256 ~2.9e5 (cost per call); the values do
not depend on it (bit-identical from 512 rows up)."""


FUSED_ROWS = MAX_ROWS
"""A group of more rows than this runs ``decode_step(..., fused=True)``: the same
values to float rounding (sums in another order: ≤ a few ulp, measured ≤ 7e-8 relative
in float32), ~4× more rows per CPU-second (Kimi-K2.5 on GB200 NVL72, 4,096-row chunks,
float32, same run on 2 busy cores: 1.19e6 against 2.8e5 rows per CPU-second), at about
twice the compile time (a long list pays it once per structure; short lists keep the
quick-compiling stacked layout)."""


def _bucket(n: int) -> int:
    return max(8, 1 << math.ceil(math.log2(max(n, 1))))


def evaluate_many(configs: Sequence[Mapping] | None = None, **columns) -> Results:
    """Many configurations at once, vectorised (see the module docstring).

    Two forms:

    * ``evaluate_many([{...}, {...}])``: a list of dicts, each with :func:`evaluate`'s
      keyword arguments (``model``, ``system``, ``parallelism``, ``batch``, …; missing
      ones take :func:`evaluate`'s defaults, ``parallelism`` must be given);
    * ``evaluate_many(model=..., system=..., parallelism=P, batch=B, ...)``: columns;
      ``parallelism`` an ``[n, 6]`` array (:data:`~costmodel.specs.DEGREES` order) and
      the workload arguments scalars or length-``n`` arrays (broadcast); the records
      arguments (``model``, ``system``, ``precision``, ``mode``, …) scalars.

    Returns:
      :class:`Results` (arrays in input order; ``fits`` bool, ``reason`` int32).
    """
    if configs is not None and columns:
        raise UserError("evaluate_many: give a list of configurations or columns, not both")
    if configs is None:
        return _many_columns(**columns)
    rec_keys = ("model", "system", "precision", "mode", "chips", "software", "latency_scale")
    rec_default = ("kimi-k2.5", "gb200-nvl72", None, "sol", None, None, 1.0)
    wl_keys = ("batch", "context", "mtp", "acceptance", "overlap", "imbalance")
    wl_default = (1, 8192, 0, 0.0, 0.0, 1.0)
    recs, degs, wls = [], [], []
    for i, c in enumerate(configs):
        get = c.get
        recs.append(resolve(*map(get, rec_keys, rec_default)))
        p = get("parallelism")
        if p is None:
            raise UserError(f"evaluate_many: configuration {i} has no parallelism", arg="configs")
        degs.append(p if type(p) is tuple and len(p) == 6 else degrees_of(p))
        w = get("workload")  # keyword numbers (validated below) or a record, used as is
        wls.append(
            (False, *map(get, wl_keys, wl_default))
            if w is None
            else (True, *(float(getattr(w, f)) for f in WORKLOAD_FIELDS))
        )
    try:
        deg = np.asarray(degs, np.float64)
    except (TypeError, ValueError):  # a tuple of six non-numbers: degrees_of names it
        deg = np.asarray([degrees_of(d) for d in degs], np.float64)
    # workload: keyword numbers validated once per distinct tuple, then gathered
    uniq = {w: w[1:] if w[0] else _workload(*w[1:]) for w in dict.fromkeys(wls)}
    table = np.asarray(list(uniq.values()), np.float64).reshape(-1, 6)
    pos = {w: j for j, w in enumerate(uniq)}
    rows = np.concatenate([deg.reshape(-1, 6), table[[pos[w] for w in wls]]], axis=1)
    flats = {id(f): f for f in recs}
    fid = np.fromiter(map(id, recs), np.int64, len(recs))
    return _run_groups(flats, fid, rows)


def _many_columns(parallelism, model="kimi-k2.5", system="gb200-nvl72", precision=None,
                  mode="sol", chips=None, software=None, latency_scale=1.0,
                  batch=1, context=8192, mtp=0, acceptance=0.0, overlap=0.0,
                  imbalance=1.0) -> Results:  # fmt: skip
    flat = resolve(model, system, precision, mode, chips, software, latency_scale)
    par = np.asarray(parallelism, np.float64)
    if par.ndim != 2 or par.shape[1] != 6:
        raise UserError(
            f"parallelism: expected an [n, 6] array, got shape {par.shape}", arg="parallelism"
        )
    n = len(par)
    wl = [batch, context, mtp, acceptance, overlap, imbalance]
    if all(np.ndim(v) == 0 for v in wl):
        wl_cols = np.broadcast_to(np.asarray(_workload(*wl), np.float64), (n, 6))
    else:
        from search.errors import check_number

        wl_cols = np.empty((n, 6), np.float64)
        names = ("batch", "context", "mtp", "acceptance", "overlap", "imbalance")
        lims = ((1, 1e9), (1, 1e9), (0, 16), (0, 1), (0, 1), (1, 100))
        for j, (v, name, (lo, hi)) in enumerate(zip(wl, names, lims, strict=True)):
            col = np.broadcast_to(np.asarray(v, np.float64), (n,))
            for u in np.unique(col):
                check_number(name, float(u), lo, hi, integer=j < 3)
            wl_cols[:, j] = col
    rows = np.concatenate([par, wl_cols], axis=1)
    return _run_groups({id(flat): flat}, np.full(n, id(flat)), rows)


def _run_groups(flats: dict, fid: np.ndarray, rows: np.ndarray) -> Results:
    dt = float_dtype()
    n = len(rows)
    out = np.empty((n, N_OUT), dt)
    if len(flats) == 1:
        groups = [(next(iter(flats.values())), None)]
    else:
        groups = [(f, np.nonzero(fid == k)[0]) for k, f in flats.items()]
    devices = jax.local_devices()
    for flat, idx in groups:
        sel = rows if idx is None else rows[idx]
        prog = many_program(flat.treedef, flat.n, len(sel) > FUSED_ROWS)
        rec = flat.vec(dt)
        res = np.empty((len(sel), N_OUT), dt)
        spread = len(devices) > 1 and len(sel) > MAX_ROWS
        recs = [jax.device_put(rec, d) for d in devices] if spread else None
        pending: list = []  # chunks in flight: dispatched to every device, then read back
        for k, lo in enumerate(range(0, len(sel), MAX_ROWS)):
            part = sel[lo : lo + MAX_ROWS]
            m = len(part)
            # a long list's last chunk is padded to a full one: one program per structure
            x = np.empty((MAX_ROWS if len(sel) > MAX_ROWS else _bucket(m), 12), dt)
            x[:m] = part
            x[m:] = part[-1]
            if spread:
                d = k % len(devices)
                pending.append((lo, m, prog(recs[d], jax.device_put(x, devices[d]))))
            else:
                pending.append((lo, m, prog(rec, x)))
            while len(pending) > (2 * len(devices) if spread else 0):
                lo_, m_, r = pending.pop(0)
                res[lo_ : lo_ + m_] = np.asarray(r)[:m_]
        for lo_, m_, r in pending:
            res[lo_ : lo_ + m_] = np.asarray(r)[:m_]
        if idx is None:
            out[:] = res
        else:
            out[idx] = res
    cols = [out[:, j] for j in range(N_OUT)]
    cols[_I_FITS] = cols[_I_FITS].astype(bool)
    cols[_I_REASON] = cols[_I_REASON].astype(np.int32)
    return Results(*cols[:_NR], Breakdown(*cols[_NR:]))


def packed_rows(flats: Sequence[_Flat], rows: np.ndarray, dtype=None) -> np.ndarray:
    """Packed outputs ``[n, N_OUT]`` of ``flats[i]`` with ``rows[i]`` (12 numbers: six
    degrees, six workload numbers). Up to :data:`LOOP_ROWS` rows run one by one through
    the single-configuration program (no further compilation), more through one
    vmapped program per structure; both give the same values."""
    dt = np.dtype(dtype) if dtype is not None else float_dtype()
    n = len(rows)
    out = np.empty((n, N_OUT), dt)
    if n <= LOOP_ROWS:
        for i in range(n):
            out[i] = packed_flat(flats[i], rows[i, :6], rows[i, 6:], dt)
        return out
    by_struct: dict = {}
    for i, f in enumerate(flats):
        by_struct.setdefault((f.treedef, f.n), []).append(i)
    for (td, nl), idx in by_struct.items():
        x = np.concatenate([np.stack([flats[i].vec(dt) for i in idx]), rows[idx].astype(dt)], 1)
        prog = rows_program(td, nl)
        for lo in range(0, len(x), MAX_ROWS):
            part = x[lo : lo + MAX_ROWS]
            m = len(part)
            pad = np.concatenate([part, np.repeat(part[-1:], _bucket(m) - m, 0)])
            out[np.asarray(idx[lo : lo + m])] = np.asarray(prog(pad))[:m]
    return out


LOOP_ROWS = 4096
"""Most rows :func:`packed_rows` evaluates one by one (each call ~0.1 ms through XLA,
~10 µs as native code; compiling the vmapped program costs seconds)."""


__all__ = [
    "Breakdown",
    "Result",
    "Results",
    "WORKLOAD_FIELDS",
    "degrees_of",
    "evaluate",
    "evaluate_flat",
    "evaluate_many",
    "evaluate_records",
    "packed_rows",
    "resolve",
]
