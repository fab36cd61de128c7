"""Generate ``hardware_db/data/models/<slug>.toml`` from the Hugging Face config copies.

Run from the repository root::

    python -m hardware_db.tools.gen_models           # (re)write every model TOML
    python -m hardware_db.tools.gen_models --check   # exit 1 if any file is stale

Each entry of :data:`MODELS` names the config copy in ``tests/data/hf_configs`` (``C`` grade:
verbatim copies of the Hugging Face files), the database slug, display name, aliases (the
Hugging Face ids), the model's *native* precision recipe (``precisions.toml``) and the
published parameter counts with their own source and grade (from
the source named in each entry; see ``docs/references.md``). ``[architecture]`` is exactly what
:func:`hardware_db.hf_import.from_hf_config` derives, so the TOML round-trips to the importer's
``ModelSpec``. Published active-parameter figures carry the publisher's convention as flags:
``embedding_included`` (input embedding counted) and, where the publisher also leaves the
output head out, ``lm_head_included = false``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from hardware_db.hf_import import (
    ImportedModel,
    from_hf_config,
    notes_for,
    precision_fields_used,
    to_toml,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "tests" / "data" / "hf_configs"
MODELS_DIR = REPO / "hardware_db" / "data" / "models"


def pub(value: float, source, grade: str, note: str = "", **flags) -> dict:
    """A published figure: ``{value, source, grade[, note][, flags]}``."""
    d = {"value": float(value), "source": source, "grade": grade}
    if note:
        d["note"] = note
    d.update(flags)
    return d


@dataclasses.dataclass(frozen=True)
class Entry:
    """One model of the database."""

    slug: str
    config: str  # "<org>--<repo>" of tests/data/hf_configs/<org>--<repo>_config.json
    display: str
    aliases: tuple[str, ...]
    recipe: str
    published: dict = dataclasses.field(default_factory=dict)
    note: str = ""

    @property
    def path(self) -> Path:
        return CONFIG_DIR / f"{self.config}_config.json"

    @property
    def hf_id(self) -> str:
        return self.config.replace("--", "/", 1)


# ----------------------------------------------------------------------------- sources
_K2_REPORT = ["https://arxiv.org/abs/2507.20534", "https://glennklockwood.com/garden/Kimi-K2.5"]
_K25_BLOG = (
    "https://developer.nvidia.com/blog/"
    "build-with-kimi-k2-5-multimodal-vlm-using-nvidia-gpu-accelerated-endpoints"
)
_DSV3 = "https://github.com/deepseek-ai/DeepSeek-V3"
_LLAMA_SKU = "https://github.com/meta-llama/llama-models/blob/main/models/sku_list.py"
_LLAMA4 = "https://github.com/meta-llama/llama-models/blob/main/models/llama4/MODEL_CARD.md"
_GPT_OSS = "https://github.com/openai/gpt-oss"
_MINIMAX = "https://github.com/MiniMax-AI/MiniMax-M2"
_MINIMAX_2ND = "https://pillumina.github.io/posts/architecture/"
_QWEN30_CARD = [
    "https://apxml.com/models/qwen3-30b-a3b",
    "https://grokipedia.com/page/Qwen3-30B-A3B",
]
_MIXTRAL22 = "https://www.oneyearago.ai/news/2024-04-10-mixtral-8x22b/"
_MIXTRAL7 = "https://askai.glarity.app/search/What-is-Mixtral-AI-and-what-are-its-key-features"

_NAME = "stated in the model name"
_K2_NOTE = (
    "Kimi K2 tech report figures as quoted by glennklockwood (arXiv 2507.20534: 1.04T / 32.6B); "
    "the README rounds to 1T / 32B (+2.6 %/+2.7 % off the derived count)"
)
_DS_TOTAL = "main model; the 685B on Hugging Face includes the 14B MTP module"


def _llama(size: str, total: float) -> Entry:
    return Entry(
        f"llama-3.1-{size.lower()}",
        f"meta-llama--Meta-Llama-3.1-{size}",
        f"Llama-3.1-{size}",
        (
            f"meta-llama/Llama-3.1-{size}",
            f"meta-llama/Meta-Llama-3.1-{size}",
            f"meta-llama/Llama-3.1-{size}-Instruct",
            f"meta-llama/Meta-Llama-3.1-{size}-Instruct",
        ),
        "bf16",
        {"total_params": pub(total, _LLAMA_SKU, "R", _NAME)},
    )


MODELS: tuple[Entry, ...] = (
    Entry(
        "kimi-k2.5",
        "moonshotai--Kimi-K2.5",
        "Kimi-K2.5",
        ("moonshotai/Kimi-K2.5",),
        "int4-experts",
        {
            "total_params": pub(
                1.04e12,
                _K2_REPORT,
                "S",
                "text backbone = Kimi-K2 (1.04T per its tech report, + ~0.4B MoonViT vision "
                "tower not modelled); NVIDIA's blog rounds to 1T",
            ),
            "active_params": pub(32.86e9, _K25_BLOG, "S", embedding_included=True),
        },
    ),
    Entry(
        "kimi-k2",
        "moonshotai--Kimi-K2-Instruct",
        "Kimi-K2",
        ("moonshotai/Kimi-K2-Instruct", "moonshotai/Kimi-K2-Base"),
        "fp8-block",
        {
            "total_params": pub(1.04e12, _K2_REPORT, "S", _K2_NOTE),
            "active_params": pub(32.6e9, _K2_REPORT, "S", _K2_NOTE, embedding_included=True),
        },
    ),
    Entry(
        "deepseek-v3",
        "deepseek-ai--DeepSeek-V3",
        "DeepSeek-V3",
        ("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-V3-Base"),
        "fp8-block",
        {
            "total_params": pub(671e9, _DSV3, "R", _DS_TOTAL),
            "active_params": pub(37e9, _DSV3, "R", embedding_included=True),
        },
    ),
    Entry(
        "deepseek-r1",
        "deepseek-ai--DeepSeek-R1",
        "DeepSeek-R1",
        ("deepseek-ai/DeepSeek-R1",),
        "fp8-block",
        {
            "total_params": pub(671e9, _DSV3, "R", _DS_TOTAL + "; R1 = V3 architecture"),
            "active_params": pub(37e9, _DSV3, "R", "R1 = V3 architecture", embedding_included=True),
        },
    ),
    Entry(
        "deepseek-v3.2",
        "deepseek-ai--DeepSeek-V3.2",
        "DeepSeek-V3.2",
        ("deepseek-ai/DeepSeek-V3.2",),
        "fp8-block",
    ),
    _llama("8B", 8e9),
    _llama("70B", 70e9),
    _llama("405B", 405e9),
    Entry(
        "llama-4-scout",
        "meta-llama--Llama-4-Scout-17B-16E-Instruct",
        "Llama-4-Scout-17B-16E",
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Scout-17B-16E"),
        "bf16",
        {
            "total_params": pub(109e9, _LLAMA4, "R", "includes the vision encoder (not modelled)"),
            "active_params": pub(17e9, _LLAMA4, "R", embedding_included=True),
        },
    ),
    Entry(
        "llama-4-maverick",
        "meta-llama--Llama-4-Maverick-17B-128E-Instruct",
        "Llama-4-Maverick-17B-128E",
        ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", "meta-llama/Llama-4-Maverick-17B-128E"),
        "bf16",
        {
            "total_params": pub(400e9, _LLAMA4, "R"),
            "active_params": pub(17e9, _LLAMA4, "R", embedding_included=True),
        },
    ),
    Entry("qwen3-8b", "Qwen--Qwen3-8B", "Qwen3-8B", ("Qwen/Qwen3-8B",), "bf16"),
    Entry("qwen3-32b", "Qwen--Qwen3-32B", "Qwen3-32B", ("Qwen/Qwen3-32B",), "bf16"),
    Entry(
        "qwen3-30b-a3b",
        "Qwen--Qwen3-30B-A3B",
        "Qwen3-30B-A3B",
        ("Qwen/Qwen3-30B-A3B",),
        "bf16",
        {
            "total_params": pub(
                30.5e9,
                _QWEN30_CARD,
                "S",
                "Hugging Face card figure quoted by secondaries; "
                "the NeMo docs' 30B is the rounded name",
            ),
            "active_params": pub(
                3.3e9,
                _QWEN30_CARD,
                "S",
                "3.3B activated per the card (Qwen counts the "
                "embedding); the name's 3B matches the count without embedding (3.04B)",
                embedding_included=True,
            ),
        },
    ),
    Entry(
        "qwen3-235b-a22b",
        "Qwen--Qwen3-235B-A22B",
        "Qwen3-235B-A22B",
        ("Qwen/Qwen3-235B-A22B",),
        "bf16",
        {
            "total_params": pub(
                235e9,
                "https://huggingface.co/Qwen/Qwen3-235B-A22B",
                "S",
                _NAME + "; NVIDIA Megatron-Bridge docs: 235B total, 22B active",
            ),
            "active_params": pub(
                22e9,
                "https://huggingface.co/Qwen/Qwen3-235B-A22B",
                "S",
                _NAME,
                embedding_included=True,
            ),
        },
    ),
    Entry(
        "qwen3-coder-480b-a35b",
        "Qwen--Qwen3-Coder-480B-A35B-Instruct",
        "Qwen3-Coder-480B-A35B",
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct",),
        "bf16",
    ),
    Entry("qwen3.5-27b", "Qwen--Qwen3.5-27B", "Qwen3.5-27B", ("Qwen/Qwen3.5-27B",), "bf16"),
    Entry(
        "qwen3.5-35b-a3b",
        "Qwen--Qwen3.5-35B-A3B",
        "Qwen3.5-35B-A3B",
        ("Qwen/Qwen3.5-35B-A3B",),
        "bf16",
    ),
    Entry(
        "qwen3.5-122b-a10b",
        "Qwen--Qwen3.5-122B-A10B",
        "Qwen3.5-122B-A10B",
        ("Qwen/Qwen3.5-122B-A10B",),
        "bf16",
    ),
    Entry(
        "qwen3.5-397b-a17b",
        "Qwen--Qwen3.5-397B-A17B",
        "Qwen3.5-397B-A17B",
        ("Qwen/Qwen3.5-397B-A17B",),
        "bf16",
    ),
    Entry(
        "gpt-oss-120b",
        "openai--gpt-oss-120b",
        "gpt-oss-120b",
        ("openai/gpt-oss-120b",),
        "mxfp4-experts",
        {
            "total_params": pub(117e9, _GPT_OSS, "R"),
            "active_params": pub(
                5.1e9,
                _GPT_OSS,
                "R",
                "OpenAI counts the unembedding, not the embedding",
                embedding_included=False,
            ),
        },
    ),
    Entry(
        "gpt-oss-20b",
        "openai--gpt-oss-20b",
        "gpt-oss-20b",
        ("openai/gpt-oss-20b",),
        "mxfp4-experts",
        {
            "total_params": pub(21e9, _GPT_OSS, "R"),
            "active_params": pub(
                3.6e9,
                _GPT_OSS,
                "R",
                "OpenAI counts the unembedding, not the embedding",
                embedding_included=False,
            ),
        },
    ),
    Entry(
        "glm-5",
        "zai-org--GLM-5",
        "GLM-5",
        ("zai-org/GLM-5",),
        "bf16",
        note="released in BF16 (zai-org/GLM-5) and FP8 (zai-org/GLM-5-FP8)",
    ),
    Entry("glm-5.1", "zai-org--GLM-5.1", "GLM-5.1", ("zai-org/GLM-5.1",), "bf16"),
    Entry(
        "minimax-m2.5",
        "MiniMaxAI--MiniMax-M2.5",
        "MiniMax-M2.5",
        ("MiniMaxAI/MiniMax-M2.5",),
        "fp8-block",
        {
            "total_params": pub(230e9, _MINIMAX, "R", "MiniMax-M2 README; M2.5 = M2 architecture"),
            "active_params": pub(
                10e9,
                [_MINIMAX, _MINIMAX_2ND],
                "R",
                "MiniMax-M2 README (rounded); the count "
                "without embedding and LM head (9.80B derived) matches a secondary analysis' "
                "9.8B for M2.7 (same architecture)",
                embedding_included=False,
                lm_head_included=False,
            ),
        },
    ),
    Entry(
        "minimax-m2.7",
        "MiniMaxAI--MiniMax-M2.7",
        "MiniMax-M2.7",
        ("MiniMaxAI/MiniMax-M2.7",),
        "fp8-block",
    ),
    Entry("minimax-m3", "MiniMaxAI--MiniMax-M3", "MiniMax-M3", ("MiniMaxAI/MiniMax-M3",), "bf16"),
    Entry(
        "mixtral-8x7b",
        "mistralai--Mixtral-8x7B-v0.1",
        "Mixtral-8x7B",
        ("mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
        "bf16",
        {"total_params": pub(46.7e9, _MIXTRAL7, "S")},
    ),
    Entry(
        "mixtral-8x22b",
        "mistralai--Mixtral-8x22B-v0.1",
        "Mixtral-8x22B",
        ("mistralai/Mixtral-8x22B-v0.1",),
        "bf16",
        {
            "total_params": pub(141e9, _MIXTRAL22, "S"),
            "active_params": pub(39e9, _MIXTRAL22, "S", embedding_included=True),
        },
        note="base v0.1 config (vocab 32000; Instruct-v0.1 has 32768)",
    ),
    Entry(
        "deepseek-v4-pro",
        "deepseek-ai--DeepSeek-V4-Pro",
        "DeepSeek-V4-Pro",
        ("deepseek-ai/DeepSeek-V4-Pro",),
        "mxfp4-experts",
    ),
    Entry(
        "deepseek-v4-flash",
        "deepseek-ai--DeepSeek-V4-Flash",
        "DeepSeek-V4-Flash",
        ("deepseek-ai/DeepSeek-V4-Flash",),
        "mxfp4-experts",
    ),
    Entry("kimi-k3", "moonshotai--Kimi-K3", "Kimi-K3", ("moonshotai/Kimi-K3",), "mxfp4-experts"),
    Entry(
        "gemma-4-26b-a4b",
        "google--gemma-4-26B-A4B",
        "Gemma-4-26B-A4B",
        ("google/gemma-4-26B-A4B",),
        "bf16",
    ),
    Entry(
        "nemotron-3-nano-30b-a3b",
        "nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        "Nemotron-3-Nano-30B-A3B",
        ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",),
        "bf16",
    ),
    Entry(
        "nemotron-3-super-120b-a12b",
        "nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-FP8",
        "Nemotron-3-Super-120B-A12B",
        ("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8",),
        "fp8-kv",
        note="architecture from the FP8 release's config",
    ),
    Entry(
        "nemotron-3-ultra-550b-a55b",
        "nvidia--NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16",
        "Nemotron-3-Ultra-550B-A55B",
        ("nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16",),
        "bf16",
    ),
    Entry(
        "nemotron-h-56b",
        "nvidia--Nemotron-H-56B-Base-8K",
        "Nemotron-H-56B",
        ("nvidia/Nemotron-H-56B-Base-8K",),
        "bf16",
    ),
    Entry(
        "llama-3.3-nemotron-super-49b",
        "nvidia--Llama-3_3-Nemotron-Super-49B-v1",
        "Llama-3.3-Nemotron-Super-49B",
        ("nvidia/Llama-3_3-Nemotron-Super-49B-v1",),
        "bf16",
    ),
    Entry(
        "mimo-v2-flash",
        "XiaomiMiMo--MiMo-V2-Flash",
        "MiMo-V2-Flash",
        ("XiaomiMiMo/MiMo-V2-Flash",),
        "fp8-block",
    ),
    Entry(
        "step-3.7-flash",
        "stepfun-ai--Step-3.7-Flash",
        "Step-3.7-Flash",
        ("stepfun-ai/Step-3.7-Flash",),
        "bf16",
    ),
)
"""The model database (slug order = file order of ``tpsopt list models``)."""


def recipe_differences(imported: ImportedModel, recipe: str) -> list[str]:
    """``Precision`` fields (those the model uses) where the checkpoint, as imported,
    differs from ``recipe``."""
    try:
        from hardware_db.loader import load_precision

        ref = load_precision(recipe)
    except Exception:  # pragma: no cover - the precision database is not readable
        return []
    out = []
    for name in precision_fields_used(imported.spec):
        a, b = float(getattr(imported.precision, name)), float(getattr(ref, name))
        if a != b:
            out.append(f"{name} {a:g} (checkpoint) vs {b:g}")
    return out


def render(e: Entry) -> str:
    """The TOML text of one entry."""
    m = from_hf_config(e.path)
    extra = [e.note] if e.note else []
    diff = recipe_differences(m, e.recipe)
    if diff:
        extra.append(f"native recipe {e.recipe} differs from the checkpoint: " + ", ".join(diff))
    meta = {
        "hf_config": e.path.name,
        "family": m.meta["family"],
        "model_type": m.meta["model_type"],
        "checkpoint_quantization": m.meta["quantization"]["method"],
        "checkpoint_recipe": m.meta["quantization"]["recipe"],
    }
    m.meta["source_file"] = e.path.name
    return to_toml(
        m,
        e.slug,
        aliases=e.aliases,
        source=f"https://huggingface.co/{e.hf_id}/blob/main/config.json",
        grade="C",
        display_name=e.display,
        precision=e.recipe,
        published=e.published or None,
        notes=notes_for(m, "; ".join(extra)),
        meta=meta,
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file is missing/stale")
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help="output folder")
    args = ap.parse_args(argv)
    stale = []
    for e in MODELS:
        path = args.out / f"{e.slug}.toml"
        text = render(e)
        old = path.read_text() if path.exists() else None
        if old == text:
            continue
        stale.append(path.name)
        if not args.check:
            _write(path, text)
    if args.check and stale:
        print(f"stale model TOMLs (run python -m hardware_db.tools.gen_models): {stale}")
        return 1
    print(f"{len(MODELS)} models, {len(stale)} {'stale' if args.check else 'written'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
