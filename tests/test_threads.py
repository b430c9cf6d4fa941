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
