"""Where a generator's weights come from: an embedded alias, a .gguf file (converted once to safetensors), an HF id
or a local folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

from ..errors import ModelLoadError, first_line
from ..hub import check_model_name
from ..model_catalogue import catalogue
from ..paths import cache_dir, quiet_transformers
from .base import LOAD_PROGRESS

DTYPES = ("float32", "bfloat16")


def _gguf_cache_folder(gguf: Path, dtype: str = "float32") -> Path:
    from importlib.metadata import version

    # transformers' version from its metadata (the same string as transformers.__version__): finding an existing
    # folder costs no transformers import (0.5 s), which a llama.cpp answer that prefills alone never needs.
    st = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{version('transformers')}".encode())
    suffix = "" if dtype == "float32" else "-bf16"
    return cache_dir() / "models" / f"{gguf.stem}-{key.hexdigest()[:12]}{suffix}"


def materialize_gguf(gguf: Path, dtype: str = "float32") -> Path:
    """Convert a GGUF file once to a safetensors folder (model + tokenizer) under the cache and return it.

    transformers dequantizes GGUF weights and rebuilds the tokenizer from GGUF metadata on every load (≈ 19 s here,
    mostly the tokenizer); the saved folder loads in about a second. The folder is written under a temporary name
    and renamed into place, so an interrupted conversion never leaves a half-written cache.

    The weights are converted tensor by tensor into safetensors shards of at most :data:`SHARD_BYTES`, never held
    whole: transformers' own GGUF load builds the model *and* a full fp32 state dict; converting the 1.5 B reader
    (6.2 GB of fp32 weights) that way peaked at 8.8 GB, this way at 3.9 GB (tokenizer included).
    Tensor for tensor, the result is the same bytes as transformers' (tests/test_models.py compares them). Progress
    goes to :data:`~docqa.generators.base.LOAD_PROGRESS` (the CLI's bar), never to plain output: transformers' own
    "Converting and de-quantizing" bar used to leak into piped and --json output.

    ``dtype="bfloat16"`` writes the weights rounded to bf16 (half the bytes), for a model that only ever runs in bf16:
    the llama.cpp backend's prefill handover (:mod:`.prefill_assist`). Loading it maps 3 GB for the 1.5 B reader where
    the fp32 folder mapped 6 GB on the way to the same bf16 weights.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype}: one of {DTYPES}")
    out = _gguf_cache_folder(gguf, dtype)
    if (out / "config.json").exists():
        return out
    quiet_transformers()
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config.architectures = [_write_weights(gguf, config, tmp, dtype)]
        config.dtype = dtype
        config.save_pretrained(str(tmp))
        with contextlib.suppress(ValueError, OSError):  # a config without generation settings has none to save
            GenerationConfig.from_model_config(config).save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tmp))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


SHARD_BYTES = 512 * 2**20  # converted weights held at once, at most (plus one tensor)


def _write_weights(gguf: Path, config, folder: Path, dtype: str = "float32") -> str:
    """Dequantize ``gguf``'s tensors one at a time, named and reshaped by transformers' own GGUF rules (its tensor
    processors and name map, as ``from_pretrained(gguf_file=…)`` applies them), into fp32 safetensors shards plus
    the index transformers loads them by (``dtype`` bfloat16: rounded from fp32 as ``Tensor.to`` rounds). Only a
    model skeleton on the meta device is built, for the names; returns its class name (the config's
    ``architectures``)."""
    import numpy as np
    import torch
    from gguf import GGUFReader, dequantize
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
        load_gguf_checkpoint,
        read_field,
    )

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=False)  # metadata only: what the processors read
    parsed["tensors"] = {}
    reader = GGUFReader(str(gguf))
    architecture = read_field(reader, "general.architecture")[0]
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=parsed.get("config", {}))
    names = get_gguf_hf_weights_map(skeleton, processor)
    wanted = set(skeleton.state_dict())
    shard: dict[str, torch.Tensor] = {}
    held = total = 0
    files: list[str] = []
    weight_map: dict[str, str] = {}

    def flush() -> None:
        nonlocal shard, held
        if not shard:
            return
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        files.append(name)
        weight_map.update(dict.fromkeys(shard, name))
        shard, held = {}, 0

    report = LOAD_PROGRESS.get()
    for done, tensor in enumerate(reader.tensors, 1):
        if report is not None:
            report(done, len(reader.tensors), "tensors converted for transformers")
        result = processor.process(weights=dequantize(tensor.data, tensor.tensor_type), name=tensor.name,
                                   tensor_key_mapping=names, parsed_parameters=parsed)
        if result.weights is None or result.name not in names:
            continue
        key = names[result.name]
        # A copy: a tensor stored unquantized (F32) comes back as a read-only view of the file.
        shard[key] = torch.from_numpy(np.array(result.weights, dtype=np.float32)).to(getattr(torch, dtype))
        held += shard[key].nbytes
        total += shard[key].nbytes
        if held >= SHARD_BYTES:
            flush()
    flush()
    # A tied output layer is the embedding (absent from the file); anything else missing is a conversion gap.
    tied = {k for k in wanted if getattr(config, "tie_word_embeddings", False) and k.startswith("lm_head.")}
    missing = sorted(wanted - set(weight_map) - tied - {k for k in wanted if "rotary_emb" in k})
    if missing:
        raise ModelLoadError(f"the GGUF file has no tensor for {len(missing)} of the model's weights "
                             f"({', '.join(missing[:3])}…)")
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return type(skeleton).__name__


def resolve_model(model: str, option: str = "--model") -> str:
    """The folder or HF id to load for ``model``: embedded aliases and .gguf files become converted folders; a name
    that cannot load here (a path that does not exist, an alias mistyped, an id neither cached nor downloadable) is
    one error naming ``option`` (docqa/hub.py), before transformers retries an unreachable hub."""
    # Imported here: docqa.models reads its stamps with pydantic, which the GPU machine's benchmark
    # (benchmarks/gpu.py: torch and transformers only) does not have, and this package must import there.
    from ..models import embedded_model_path

    path = embedded_model_path(model, "generator", option)
    if path is None and model.endswith(".gguf") and Path(model).is_file():
        path = Path(model)
    if path is None:
        check_model_name(model, "generator", option, [m.alias for m in catalogue("generator")])
    if path is not None and path.suffix == ".gguf":
        try:
            return str(materialize_gguf(path))
        except Exception as e:  # noqa: BLE001 - any conversion failure is one clear line
            raise ModelLoadError(f"Could not convert GGUF model {path}: {first_line(e)}.") from e
    return str(path) if path is not None else model
