"""torch's thread count: --threads, $DOCQA_THREADS, or the cores other work does not keep busy."""

import pytest

from docqa.errors import ConfigError
from docqa.threads import default_threads, resolve


@pytest.mark.parametrize("cores, load, want", [(2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 3.7, 1), (16, 4.2, 12),
                                               (1, 0.0, 1)])
def test_default_leaves_the_cores_other_processes_use(cores, load, want):
    assert default_threads(cores, load) == want


def test_explicit_and_environment_settings(monkeypatch):
    monkeypatch.setattr("docqa.threads.available_cores", lambda: 4)
    assert resolve(3) == 3
    assert resolve(999) == 4  # more threads than cores only wait on each other
    monkeypatch.setenv("DOCQA_THREADS", "1")
    assert resolve(None) == 1
    monkeypatch.setenv("DOCQA_THREADS", "auto")
    assert resolve(None) >= 1
    for bad in (0, -2, "many"):
        with pytest.raises(ConfigError, match="--threads must be a positive number"):
            resolve(bad)


def test_busy_cpus_is_a_share_of_the_machine():
    import os

    from docqa.threads import busy_cpus

    assert 0.0 <= busy_cpus(0.05) <= (os.cpu_count() or 1) + 1e-6


def test_a_thread_count_for_llama_cpp_does_not_import_torch():
    """llama.cpp takes its thread count per context: resolving it, and asking whether a GPU wants the model, on a
    machine without a GPU driver, must not cost a torch import (~1 s of a one-question ask on 2 cores)."""
    import subprocess
    import sys

    code = ("import sys; import docqa.generators as g; from docqa import threads; "
            "g._GPU_NODES = ('/nonexistent/nvidia0',); n = threads.count(1); wanted = g._gpu_wanted(None); "
            "print(n, wanted, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "False", "False"]


def test_apply_sets_torch_to_the_count(monkeypatch):
    torch = pytest.importorskip("torch")
    from docqa import threads

    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_APPLIED", [])
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    try:
        assert threads.count(1) == 1 and threads.count() == 1  # resolved once, torch untouched
        assert threads.apply() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
