"""Safe loading of PyTorch files: `torch.load(weights_only=True)` with one-line user errors.

clapsweep never unpickles arbitrary Python objects. A file that needs them is refused with the
one-off command that converts it, in an environment the user trusts, to a plain state dict.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import torch

from clapsweep.errors import UserError

# The first bytes of what torch.save writes: a zip archive (torch >= 1.6) or, in the legacy
# format, a pickled magic number (protocol 2, LONG1 0x1950a86a20f9469cfc6c).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_WEIGHTS_ONLY = "Weights only load failed"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable or does not fit the model."""


def load_trusted_weights(
    path: str | Path, what: str = "checkpoint", *, map_location: str | torch.device = "cpu"
) -> object:
    """`torch.load(path, map_location=..., weights_only=True)`, failures as one-line errors.

    `what` names the file's role in messages ("PANNs CNN14 checkpoint", "resume checkpoint").
    Raises CheckpointError (a UserError) for a missing path, a directory, an unreadable file,
    a file that is not a PyTorch file (garbage, truncated, another format) and a PyTorch file
    whose pickle holds Python objects that a weights-only load refuses; the last message gives
    the command that converts such a file to a plain `{"model": state_dict}` file.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".ckpt"))
        hint = f" (it holds {', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})"
        raise CheckpointError(
            f"{path}: {what} path is a directory, not a file; give the checkpoint file itself"
            + (hint if inside else "")
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"{path}: {what} cannot be read: {e.strerror}") from None
    except Exception as e:  # a damaged file can fail anywhere in the unpickler or zip reader
        if _needs_pickle_objects(path, str(e)):
            raise CheckpointError(_needs_pickle(path, what, str(e))) from None
        empty = "; the file is empty" if path.stat().st_size == 0 else ""
        raise CheckpointError(
            f"{path}: {what} is not a PyTorch checkpoint file (truncated or another format)" + empty
        ) from None


def _needs_pickle_objects(path: Path, error: str) -> bool:
    """Whether a weights-only refusal comes from a whole PyTorch file whose pickle holds other
    objects, rather than from garbage or a file cut short (whose bytes can read as opcodes or
    as a clipped global name such as `torch._utils._re`)."""
    if _WEIGHTS_ONLY not in error:
        return False
    found = _GLOBAL.search(error)
    if found is None:
        with open(path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
        return head.startswith(_ZIP_MAGIC) or head == _LEGACY_MAGIC
    return _plausible_global(found.group(1))


def _plausible_global(name: str) -> bool:
    """False for a global name that a cut or damaged file produced: an empty part, a torch
    name that does not resolve, or a missing attribute of a module already loaded. Nothing is
    imported (a name read from the file must not run code); a module that is not loaded here
    (a training script's `models.Cnn14`) is given the benefit of the doubt."""
    module, _, attr = name.rpartition(".")
    if not module or not attr:
        return False
    loaded = sys.modules.get(module)
    if loaded is None:
        return not name.startswith("torch.")
    return module == "__main__" or hasattr(loaded, attr)


def _needs_pickle(path: Path, what: str, error: str) -> str:
    found = _GLOBAL.search(error)
    objects = f" ({found.group(1)})" if found else ""
    out = path.with_name(f"{path.stem}.state{path.suffix or '.pth'}")
    code = (
        f"import torch; o = torch.load({json.dumps(str(path))}, weights_only=False); "
        'o = o.get("model", o) if isinstance(o, dict) else o; '
        'o = o.state_dict() if hasattr(o, "state_dict") else o; '
        f'torch.save({{"model": o}}, {json.dumps(str(out))})'
    )
    return (
        f"{path}: {what} holds Python objects{objects} that a safe load refuses; convert it "
        f"once, in an environment you trust, to a plain state dict: python -c {shlex.quote(code)} "
        f"and give {out} instead"
    )
