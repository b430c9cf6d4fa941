"""What only a CUDA GPU can show: the dtype ``auto`` picks there, a real CUDA out-of-memory error turned into one
DocQAError, ``--device auto`` (accelerate's device map), weights straight on the device.

Skipped where torch sees no GPU (this project's CI); run on the GPU machine with the generator tests, as DEVELOPERS.md
says: ``DOCQA_TEST_DEVICE=cuda pytest tests/test_cuda.py tests/test_generator.py tests/test_rope_layouts.py …``.
"""

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from docqa.generators import GeneratorConfig, TransformersGenerator  # noqa: E402
from tests import tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_llama.build(tmp_path_factory.mktemp("tiny-cuda"), window=64)


def _ids(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 240, (n,), generator=g).tolist()


def test_auto_dtype_on_a_gpu_is_bf16_where_it_has_it_and_weights_load_onto_it(folder):
    gen = TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), device="cuda"))
    want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert gen.dtypes.prefill == gen.dtypes.decode == want
    assert {p.device.type for p in gen.model.parameters()} == {"cuda"}
    assert {p.dtype for p in gen.model.parameters()} == {want}
    # docqa's few-query attention there too (SDPA for longer blocks): graph decode steps ran 2.7x faster with it.
    assert gen.model.config._attn_implementation == "docqa_sdpa"
    out = gen.generate(_ids(40), 8)
    assert out.completion_tokens > 0


def test_device_auto_spreads_with_accelerate_and_answers_like_one_gpu(folder):
    one = TransformersGenerator("t", str(folder), GeneratorConfig(model=str(folder), device="cuda:0",
                                                                  dtype="float32"))
    spread = TransformersGenerator("t", str(folder), GeneratorConfig(model=str(folder), device="auto",
                                                                     dtype="float32"))
    # accelerate's map over every GPU: with one GPU, all of it there (transformers 5.17 sets no hf_device_map then)
    assert {str(p.device) for p in spread.model.parameters()} == {"cuda:0"} and spread.device == "cuda:0"
    for seed in range(3):
        ids = _ids(30 + 20 * seed, seed)
        assert spread.generate(ids, 10).text == one.generate(ids, 10).text


def test_a_real_cuda_out_of_memory_is_one_docqa_error_and_the_generator_goes_on(folder):
    from docqa.errors import OutOfMemory

    gen = TransformersGenerator("t", str(folder), GeneratorConfig(model=str(folder), device="cuda",
                                                                  dtype="float32"))
    before = gen.generate(_ids(30), 8).text
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    # Allow what is in use now plus 64 MiB; a 1 M-token prefix needs 512 MiB of keys and values alone.
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 64 * 2**20) / total))
    try:
        n = 1_000_000
        with pytest.raises(OutOfMemory, match=r"Out of memory on cuda:0 for 1,000,512 tokens.*GiB.*--max-context"):
            gen.prefill_prefix(_ids(n), gen.plain_plan(n + 600))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert gen.generate(_ids(30), 8).text == before  # nothing left broken


def test_cuda_graph_decoding_gives_the_answers_of_eager_steps(folder, monkeypatch):
    from docqa.generators import cuda_graphs

    cfg = dict(model=str(folder), device="cuda", dtype="float32")
    eager = TransformersGenerator("t", str(folder), GeneratorConfig(**cfg, cuda_graphs=False))
    graphs = TransformersGenerator("t", str(folder), GeneratorConfig(**cfg))
    captured = []
    real = cuda_graphs.StaticStep._capture

    def spy(self):
        real(self)
        captured.append(self.graph is not None)

    monkeypatch.setattr(cuda_graphs.StaticStep, "_capture", spy)
    for seed in range(3):  # within and past the 64-token window
        ids = _ids(20 + 40 * seed, seed)
        assert graphs.generate(ids, 24).text == eager.generate(ids, 24).text
    assert captured and all(captured) and not getattr(graphs, "_graphs_failed", False)
    p_graph = graphs.prefill_prefix(_ids(50, 7), graphs.plain_plan(200))
    p_eager = eager.prefill_prefix(_ids(50, 7), eager.plain_plan(200))
    for k in (3, 11, 30):  # question after question on one cached prefix
        q = _ids(k, 20 + k)
        assert graphs.generate(q, 16, prefix=p_graph).text == eager.generate(q, 16, prefix=p_eager).text
        assert p_graph.cache.get_seq_length() == 50
