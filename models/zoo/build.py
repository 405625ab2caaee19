"""Build the model zoo: small, structurally real models, each exported by both of torch's ONNX exporters.

    python -m models.zoo.build [--out DIR] [--only NAME ...] [--force] [--list]
    python models/zoo/build.py ...                       # the same

Writes into a cache outside the repository (default `~/.cache/mlc-zoo/`, never committed), for each
model NAME:

* `NAME-ts.onnx`: the TorchScript exporter (`torch.onnx.export(..., dynamo=False, dynamic_axes=...)`, opset 17);
* `NAME-dynamo.onnx`: the dynamo exporter (`dynamo=True`, `dynamic_shapes` of `torch.export.Dim`s). When the
  export with dynamic shapes fails, the model is exported again with static shapes and `NAME.json` says so
  (with the reason); an export that fails altogether leaves no file, and its reason in `NAME.json`;
* `NAME.inputs.npz`: realistic inputs keyed by the ONNX input names (token ids with a right-padded mask
  whose rows have different lengths, images, audio features; batch >= 2);
* `NAME.torch.npz`: torch's outputs on those inputs keyed by the ONNX output names (the reference);
* `NAME.json`: family, input shapes, each export's status, seconds and reason, package versions.

Every model is built from a config with seeded random weights (nothing is downloaded); 1-D parameters
(norm scales and biases) and BatchNorm statistics are perturbed too, so a fusion that drops a bias or a
norm's affine changes the numbers. Families whose packages are missing are skipped with a printed reason:
`transformers` (BERT, DistilBERT, RoBERTa, GPT-2, Llama, T5, BART, Whisper encoder, ViT, DeiT, Swin),
plain `torch` (LSTM, GRU, UNet, CNN), `torchvision` and `timm` (those need the zoo venv: the `zoo` extra,
torch 2.14.1 with torchvision 0.29.1; PyPI's torchvision does not import beside torch 2.13.0).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path.home() / ".cache" / "mlc-zoo"
OPSET_TS = 17
EXPORTERS = ("ts", "dynamo")
FORMAT = 1  # bump when entries change: cached entries of another format are rebuilt


@dataclass
class Spec:
    """What one model family gives the exporters."""

    module: Any  # torch.nn.Module whose forward takes the inputs positionally, as plain tensors
    inputs: dict[str, np.ndarray]  # ONNX input name -> value, in forward's order
    outputs: list[str]  # ONNX output names, in the order forward returns them
    dynamic: dict[str, dict[int, str]]  # input name -> axis -> dim name
    output_dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    bounds: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # dim -> (min, max)


@dataclass
class Entry:
    name: str
    family: str  # transformers / torch / torchvision / timm: the package it needs beside torch
    description: str
    make: Callable[[], Spec]


# ---------------------------------------------------------------------------------------------- helpers


def _torch() -> Any:
    import torch

    return torch


def package_problem(family: str) -> str | None:
    """None when `family`'s package imports here, else why not (one line)."""
    names = {"torch": ["torch"], "transformers": ["torch", "transformers"], "torchvision": ["torch", "torchvision"],
             "timm": ["torch", "torchvision", "timm"]}[family]
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - torchvision beside the wrong torch raises RuntimeError
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return f"{name} does not import: {first[:160]}"
    return None


def randomize(module: Any, seed: int) -> Any:
    """Perturb 1-D parameters (norm scales, biases) and BatchNorm statistics, seeded; eval mode."""
    torch = _torch()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() == 1 and param.dtype.is_floating_point:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
        for sub in module.modules():
            if isinstance(sub, torch.nn.modules.batchnorm._BatchNorm) and sub.running_mean is not None:
                sub.running_mean.copy_(0.1 * torch.randn(sub.running_mean.shape, generator=generator))
                sub.running_var.copy_(0.5 + torch.rand(sub.running_var.shape, generator=generator))
    return module.eval()


def tokens(seed: int, batch: int = 3, sequence: int = 16, vocab: int = 1000, pad: int = 0,
           low: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and a right-padded int64 attention mask whose rows have different lengths."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(low, vocab, size=(batch, sequence), dtype=np.int64)
    lengths = np.linspace(sequence, max(2, sequence // 3), batch).round().astype(int)
    mask = (np.arange(sequence)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = pad
    return ids, mask


def images(seed: int, batch: int = 2, height: int = 64, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (batch, 3, height, width)).astype(np.float32)


class Picker:
    """Wraps a model: forward(*tensors) -> model(**dict(zip(names, tensors)), **extra), then picks outputs."""

    @staticmethod
    def wrap(model: Any, names: list[str], picks: list[str] | None, extra: dict[str, Any] | None = None,
             call: str | None = None) -> Any:
        torch = _torch()

        class _Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def _call(self, args: tuple[Any, ...]) -> Any:
                target = getattr(self.model, call) if call else self.model
                out = target(**dict(zip(names, args, strict=True)), **(extra or {}))
                if picks is None:
                    return out
                return tuple(out[k] for k in picks) if len(picks) > 1 else out[picks[0]]

        n = len(names)  # torch.export wants a forward without *args: one signature per arity
        if n == 1:
            class W1(_Wrapped):
                def forward(self, a: Any) -> Any:
                    return self._call((a,))
            return W1().eval()
        if n == 2:
            class W2(_Wrapped):
                def forward(self, a: Any, b: Any) -> Any:
                    return self._call((a, b))
            return W2().eval()

        class W3(_Wrapped):
            def forward(self, a: Any, b: Any, c: Any) -> Any:
                return self._call((a, b, c))
        return W3().eval()


def _seeded(seed: int) -> None:
    torch = _torch()
    torch.manual_seed(seed)
    np.random.seed(seed)


TOKENS = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
BATCH_SEQ = {0: "batch", 1: "sequence"}

# ---------------------------------------------------------------------------------------------- transformers


def _hf_encoder(config_cls: str, model_cls: str, seed: int, pad: int, with_types: bool, picks: list[str],
                **config: Any) -> Spec:
    import transformers

    _seeded(seed)
    cfg = getattr(transformers, config_cls)(attn_implementation="eager", pad_token_id=pad, **config)
    model = randomize(getattr(transformers, model_cls)(cfg), seed)
    ids, mask = tokens(seed, pad=pad, vocab=config.get("vocab_size", 1000))
    inputs = {"input_ids": ids, "attention_mask": mask}
    dynamic = dict(TOKENS)
    if with_types:
        types = np.zeros_like(ids)
        types[:, ids.shape[1] // 2:] = 1
        inputs["token_type_ids"] = types * mask
        dynamic["token_type_ids"] = BATCH_SEQ
    extra = {"use_cache": False} if "Bert" in model_cls or "Roberta" in model_cls else {}
    wrapped = Picker.wrap(model, list(inputs), picks, extra)
    out_dyn = {"last_hidden_state": BATCH_SEQ, "pooler_output": {0: "batch"}, "logits": BATCH_SEQ}
    return Spec(wrapped, inputs, picks, dynamic, {k: out_dyn[k] for k in picks}, {"sequence": (None, 64)})


def make_bert() -> Spec:
    return _hf_encoder("BertConfig", "BertModel", 1, 0, True, ["last_hidden_state", "pooler_output"],
                       vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, max_position_embeddings=128)


def make_distilbert() -> Spec:
    return _hf_encoder("DistilBertConfig", "DistilBertModel", 2, 0, False, ["last_hidden_state"],
                       vocab_size=1000, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=128)


def make_roberta() -> Spec:
    return _hf_encoder("RobertaConfig", "RobertaModel", 3, 1, False, ["last_hidden_state", "pooler_output"],
                       vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, max_position_embeddings=130)


def _hf_causal(config_cls: str, seed: int, **config: Any) -> Spec:
    import transformers

    _seeded(seed)
    cfg = getattr(transformers, config_cls)(attn_implementation="eager", pad_token_id=0, bos_token_id=1,
                                            eos_token_id=2, **config)
    model_cls = {"GPT2Config": "GPT2LMHeadModel", "LlamaConfig": "LlamaForCausalLM"}[config_cls]
    model = randomize(getattr(transformers, model_cls)(cfg), seed)
    ids, mask = tokens(seed)
    inputs = {"input_ids": ids, "attention_mask": mask}
    wrapped = Picker.wrap(model, list(inputs), ["logits"], {"use_cache": False})
    return Spec(wrapped, inputs, ["logits"], dict(TOKENS), {"logits": BATCH_SEQ}, {"sequence": (None, 64)})


def make_gpt2() -> Spec:
    return _hf_causal("GPT2Config", 4, vocab_size=1000, n_positions=128, n_embd=64, n_layer=2, n_head=4)


def make_llama() -> Spec:
    return _hf_causal("LlamaConfig", 5, vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


def _hf_seq2seq(config_cls: str, model_cls: str, seed: int, **config: Any) -> Spec:
    import transformers

    _seeded(seed)
    cfg = getattr(transformers, config_cls)(attn_implementation="eager", pad_token_id=0, eos_token_id=2,
                                            decoder_start_token_id=0, **config)
    model = randomize(getattr(transformers, model_cls)(cfg), seed)
    ids, mask = tokens(seed)
    decoder_ids, _ = tokens(seed + 100, sequence=10)
    decoder_ids[:, 0] = 0  # decoder start token
    decoder_ids[decoder_ids == 0] = 5
    decoder_ids[:, 0] = 0
    inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids}
    dynamic = dict(TOKENS) | {"decoder_input_ids": {0: "batch", 1: "decoder_sequence"}}
    wrapped = Picker.wrap(model, list(inputs), ["logits"], {"use_cache": False})
    return Spec(wrapped, inputs, ["logits"], dynamic, {"logits": {0: "batch", 1: "decoder_sequence"}},
                {"sequence": (None, 64), "decoder_sequence": (None, 64)})


def make_t5() -> Spec:
    return _hf_seq2seq("T5Config", "T5ForConditionalGeneration", 6, vocab_size=1000, d_model=64, d_kv=16, d_ff=128,
                       num_layers=2, num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                       relative_attention_max_distance=32)


def make_bart() -> Spec:
    return _hf_seq2seq("BartConfig", "BartForConditionalGeneration", 7, vocab_size=1000, d_model=64,
                       encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                       encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128, bos_token_id=1,
                       forced_eos_token_id=None)


def make_whisper_encoder() -> Spec:
    import transformers

    _seeded(8)
    cfg = transformers.WhisperConfig(attn_implementation="eager", vocab_size=1000, num_mel_bins=80, d_model=64,
                                     encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                                     decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128,
                                     max_source_positions=50, max_target_positions=32, pad_token_id=0,
                                     bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    model = randomize(transformers.WhisperModel(cfg), 8)
    rng = np.random.default_rng(8)  # log-mel-like features: Whisper's encoder wants exactly 2 x 50 frames
    features = (rng.normal(-0.5, 0.4, (2, 80, 100)) + 0.3 * np.sin(np.arange(100) / 7.0)).astype(np.float32)
    wrapped = Picker.wrap(model.get_encoder(), ["input_features"], ["last_hidden_state"])
    return Spec(wrapped, {"input_features": features}, ["last_hidden_state"], {"input_features": {0: "batch"}},
                {"last_hidden_state": {0: "batch"}})


def _hf_vision(config_cls: str, model_cls: str, seed: int, picks: list[str], **config: Any) -> Spec:
    import transformers

    _seeded(seed)
    cfg = getattr(transformers, config_cls)(attn_implementation="eager", **config)
    model = randomize(getattr(transformers, model_cls)(cfg), seed)
    wrapped = Picker.wrap(model, ["pixel_values"], picks)
    out_dyn = {"last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}, "logits": {0: "batch"}}
    return Spec(wrapped, {"pixel_values": images(seed)}, picks, {"pixel_values": {0: "batch"}},
                {k: out_dyn[k] for k in picks})


def make_vit() -> Spec:
    return _hf_vision("ViTConfig", "ViTModel", 9, ["last_hidden_state", "pooler_output"], image_size=64,
                      patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def make_deit() -> Spec:
    return _hf_vision("DeiTConfig", "DeiTForImageClassificationWithTeacher", 10, ["logits"], image_size=64,
                      patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      num_labels=10)


def make_swin() -> Spec:
    return _hf_vision("SwinConfig", "SwinModel", 11, ["last_hidden_state", "pooler_output"], image_size=64,
                      patch_size=4, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=4)


# ---------------------------------------------------------------------------------------------- plain torch


def make_lstm() -> Spec:
    torch = _torch()
    _seeded(12)

    class LstmClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(500, 32, padding_idx=0)
            self.lstm = torch.nn.LSTM(32, 48, num_layers=2, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(96, 5)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden, _ = self.lstm(self.embed(input_ids))
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return torch.softmax(self.head(pooled), dim=-1)

    ids, mask = tokens(12, batch=3, sequence=20, vocab=500)
    return Spec(randomize(LstmClassifier(), 12), {"input_ids": ids, "attention_mask": mask}, ["probabilities"],
                dict(TOKENS), {"probabilities": {0: "batch"}})


def make_gru() -> Spec:
    torch = _torch()
    _seeded(13)

    class GruTagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(16, 32, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(32, 8)

        def forward(self, features: Any) -> Any:
            hidden, last = self.gru(features)
            return self.head(hidden), last

    rng = np.random.default_rng(13)
    features = rng.normal(0.0, 1.0, (2, 24, 16)).astype(np.float32)
    return Spec(randomize(GruTagger(), 13), {"features": features}, ["tags", "h_n"],
                {"features": {0: "batch", 1: "sequence"}},
                {"tags": {0: "batch", 1: "sequence"}, "h_n": {1: "batch"}})


def make_unet() -> Spec:
    torch = _torch()
    functional = torch.nn.functional
    _seeded(14)

    def block(cin: int, cout: int) -> Any:
        return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout),
                                   torch.nn.ReLU(), torch.nn.Conv2d(cout, cout, 3, padding=1), torch.nn.ReLU())

    class UNet(torch.nn.Module):
        """Three poolings; up by ConvTranspose, by bilinear interpolation (scale) and nearest (to the skip's size)."""

        def __init__(self) -> None:
            super().__init__()
            self.enc1, self.enc2, self.enc3, self.mid = block(3, 8), block(8, 16), block(16, 32), block(32, 64)
            self.up3 = torch.nn.ConvTranspose2d(64, 32, 2, stride=2)
            self.dec3 = block(64, 32)
            self.reduce2 = torch.nn.Conv2d(32, 16, 1)
            self.dec2 = block(32, 16)
            self.reduce1 = torch.nn.Conv2d(16, 8, 1)
            self.dec1 = block(16, 8)
            self.out = torch.nn.Conv2d(8, 2, 1)

        def forward(self, image: Any) -> Any:
            e1 = self.enc1(image)
            e2 = self.enc2(functional.max_pool2d(e1, 2))
            e3 = self.enc3(functional.max_pool2d(e2, 2))
            m = self.mid(functional.max_pool2d(e3, 2))
            d3 = self.dec3(torch.cat([self.up3(m), e3], 1))
            u2 = functional.interpolate(self.reduce2(d3), scale_factor=2.0, mode="bilinear", align_corners=False)
            d2 = self.dec2(torch.cat([u2, e2], 1))
            u1 = functional.interpolate(self.reduce1(d2), size=e1.shape[-2:], mode="nearest")
            d1 = self.dec1(torch.cat([u1, e1], 1))
            return self.out(d1)

    dims = {0: "batch", 2: "height", 3: "width"}
    return Spec(randomize(UNet(), 14), {"image": images(14, 2, 48, 64)}, ["mask"], {"image": dims}, {"mask": dims},
                {"height": (8, 512), "width": (8, 512)})


def make_cnn() -> Spec:
    torch = _torch()
    _seeded(15)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, groups=4), nn.BatchNorm2d(64), nn.Hardswish(), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    return Spec(randomize(model, 15), {"image": images(15, 4)}, ["logits"],
                {"image": {0: "batch", 2: "height", 3: "width"}}, {"logits": {0: "batch"}},
                {"height": (8, 1024), "width": (8, 1024)})


# ---------------------------------------------------------------------------------------------- torchvision, timm


IMAGE_DYN = {0: "batch", 2: "height", 3: "width"}
IMAGE_BOUNDS: dict[str, tuple[int | None, int | None]] = {"height": (32, 1024), "width": (32, 1024)}


def _vision(model: Any, seed: int, *, pick: str | None = None, spatial: bool = True, size: int = 64) -> Spec:
    dynamic = IMAGE_DYN if spatial else {0: "batch"}
    wrapped = _Positional.wrap(model, pick) if pick else model  # segmentation models return a dict
    out_dyn = IMAGE_DYN if pick else {0: "batch"}
    return Spec(randomize(wrapped, seed), {"image": images(seed, 2, size, size)}, ["output"], {"image": dynamic},
                {"output": out_dyn}, IMAGE_BOUNDS if spatial else {})


class _Positional:
    @staticmethod
    def wrap(model: Any, pick: str) -> Any:
        torch = _torch()

        class Pick(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, image: Any) -> Any:
                return self.model(image)[pick]

        return Pick().eval()


def _tv() -> Any:
    import torchvision

    return torchvision.models


def make_tv_resnet18() -> Spec:
    _seeded(20)
    return _vision(_tv().resnet18(num_classes=10), 20)


def make_tv_mobilenet_v3() -> Spec:
    _seeded(21)
    return _vision(_tv().mobilenet_v3_small(num_classes=10), 21)


def make_tv_efficientnet_b0() -> Spec:
    _seeded(22)
    return _vision(_tv().efficientnet_b0(num_classes=10), 22)


def make_tv_convnext() -> Spec:
    _seeded(23)
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    settings = [CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 2), CNBlockConfig(128, None, 2)]
    return _vision(ConvNeXt(settings, num_classes=10), 23)


def make_tv_regnet() -> Spec:
    _seeded(24)
    return _vision(_tv().regnet_y_400mf(num_classes=10), 24)


def make_tv_deeplabv3() -> Spec:
    _seeded(25)
    model = _tv().segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5,
                                                            aux_loss=False)
    return _vision(model, 25, pick="out")


def make_tv_fcn() -> Spec:
    _seeded(26)
    model = _tv().segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=5, aux_loss=False)
    return _vision(model, 26, pick="out")


def make_tv_ssdlite() -> Spec:
    torch = _torch()
    _seeded(27)
    model = _tv().detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5,
                                                          detections_per_img=20)

    class Detect(torch.nn.Module):
        """Two images in, detections of both out, concatenated: boxes, scores, labels, image index."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: Any) -> Any:
            found = self.model(list(image.unbind(0)))
            index = [torch.full_like(d["labels"], i) for i, d in enumerate(found)]
            return (torch.cat([d["boxes"] for d in found]), torch.cat([d["scores"] for d in found]),
                    torch.cat([d["labels"] for d in found]), torch.cat(index))

    image = np.random.default_rng(27).uniform(0.0, 1.0, (2, 3, 96, 128)).astype(np.float32)
    return Spec(randomize(Detect(), 27), {"image": image}, ["boxes", "scores", "labels", "image_index"],
                {"image": {2: "height", 3: "width"}}, {}, IMAGE_BOUNDS)


def make_tv_vit() -> Spec:
    _seeded(28)
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=64, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                              num_classes=10)
    return _vision(model, 28, spatial=False)


def make_tv_swin() -> Spec:
    _seeded(29)
    from torchvision.models.swin_transformer import SwinTransformer

    model = SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                            num_classes=10)
    return _vision(model, 29, spatial=False)


def _timm(name: str, seed: int, spatial: bool = True, **kwargs: Any) -> Spec:
    import timm

    _seeded(seed)
    return _vision(timm.create_model(name, pretrained=False, num_classes=10, **kwargs), seed, spatial=spatial)


def make_timm_convnext_atto() -> Spec:
    return _timm("convnext_atto", 30)


def make_timm_mobilevit() -> Spec:
    return _timm("mobilevit_xxs", 31, spatial=False)


def make_timm_deit() -> Spec:
    return _timm("deit_tiny_patch16_224", 32, spatial=False, img_size=64, patch_size=8, depth=2)


ENTRIES: list[Entry] = [
    Entry("bert", "transformers", "BertModel, 2 layers, hidden 64, mask + token types", make_bert),
    Entry("distilbert", "transformers", "DistilBertModel, 2 layers, hidden 64", make_distilbert),
    Entry("roberta", "transformers", "RobertaModel, 2 layers, hidden 64 (positions from the padding)", make_roberta),
    Entry("gpt2", "transformers", "GPT2LMHeadModel, 2 layers, hidden 64, padding mask", make_gpt2),
    Entry("llama", "transformers", "LlamaForCausalLM, 2 layers, hidden 64, GQA 4/2 heads, RoPE, RMSNorm", make_llama),
    Entry("t5", "transformers", "T5ForConditionalGeneration, 2+2 layers, d_model 64", make_t5),
    Entry("bart", "transformers", "BartForConditionalGeneration, 2+2 layers, d_model 64", make_bart),
    Entry("whisper_encoder", "transformers", "WhisperModel's encoder, 2 layers, 80 mels x 100 frames",
          make_whisper_encoder),
    Entry("vit", "transformers", "ViTModel, 64x64 images, patch 8, 2 layers", make_vit),
    Entry("deit", "transformers", "DeiTForImageClassificationWithTeacher, 64x64, patch 8", make_deit),
    Entry("swin", "transformers", "SwinModel, 64x64, embed 32, depths 2+2, window 4", make_swin),
    Entry("lstm", "torch", "Embedding + 2-layer bidirectional LSTM + masked mean + Linear", make_lstm),
    Entry("gru", "torch", "2-layer GRU tagger, per-step Linear, dynamic sequence", make_gru),
    Entry("unet", "torch", "UNet, 3 poolings, ConvTranspose + bilinear + nearest Resize, dynamic H/W", make_unet),
    Entry("cnn", "torch", "Conv/BN/ReLU/MaxPool x3 (grouped, Hardswish) + GAP + Linear", make_cnn),
    Entry("tv_resnet18", "torchvision", "torchvision resnet18, 10 classes, 64x64", make_tv_resnet18),
    Entry("tv_mobilenet_v3", "torchvision", "torchvision mobilenet_v3_small, 64x64", make_tv_mobilenet_v3),
    Entry("tv_efficientnet_b0", "torchvision", "torchvision efficientnet_b0, 64x64", make_tv_efficientnet_b0),
    Entry("tv_convnext", "torchvision", "torchvision ConvNeXt, widths 32/64/128, 2 blocks each", make_tv_convnext),
    Entry("tv_regnet", "torchvision", "torchvision regnet_y_400mf, 64x64", make_tv_regnet),
    Entry("tv_deeplabv3", "torchvision", "torchvision deeplabv3_mobilenet_v3_large, 5 classes", make_tv_deeplabv3),
    Entry("tv_fcn", "torchvision", "torchvision fcn_resnet50, 5 classes", make_tv_fcn),
    Entry("tv_ssdlite", "torchvision", "torchvision ssdlite320_mobilenet_v3_large, 2 images", make_tv_ssdlite),
    Entry("tv_vit", "torchvision", "torchvision VisionTransformer, 64x64, patch 8, 2 layers", make_tv_vit),
    Entry("tv_swin", "torchvision", "torchvision SwinTransformer, embed 32, depths 2+2", make_tv_swin),
    Entry("timm_convnext_atto", "timm", "timm convnext_atto, 64x64", make_timm_convnext_atto),
    Entry("timm_mobilevit", "timm", "timm mobilevit_xxs, 64x64", make_timm_mobilevit),
    Entry("timm_deit", "timm", "timm deit_tiny, 64x64, patch 8, depth 2", make_timm_deit),
]
BY_NAME = {e.name: e for e in ENTRIES}


# ---------------------------------------------------------------------------------------------- exporting


def _first_line(error: BaseException) -> str:
    """`Type: first line`, of the innermost cause too (torch's exporters wrap the real reason), no ANSI colors."""

    def line(e: BaseException) -> str:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        lines = [part.strip() for part in text.splitlines() if part.strip()]
        return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"

    inner = error
    while inner.__cause__ is not None and inner.__cause__ is not inner:
        inner = inner.__cause__
    return line(error) if inner is error else f"{type(error).__name__} <- {line(inner)}"


def _flatten(out: Any) -> list[Any]:
    return list(out) if isinstance(out, tuple | list) else [out]


def export_ts(spec: Spec, path: Path) -> None:
    torch = _torch()
    args = tuple(torch.from_numpy(v) for v in spec.inputs.values())
    axes = {k: dict(v) for k, v in spec.dynamic.items()} | {k: dict(v) for k, v in spec.output_dynamic.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(spec.module, args, str(path), dynamo=False, opset_version=OPSET_TS,
                          input_names=list(spec.inputs), output_names=spec.outputs, dynamic_axes=axes,
                          do_constant_folding=True)


def export_dynamo(spec: Spec, path: Path, dynamic: bool) -> None:
    torch = _torch()
    from torch.export import Dim

    args = tuple(torch.from_numpy(v) for v in spec.inputs.values())
    dims: dict[str, Any] = {}
    for axes in spec.dynamic.values():
        for name in axes.values():
            low, high = spec.bounds.get(name, (None, None))
            kwargs = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
            dims.setdefault(name, Dim(name, **kwargs))
    shapes = tuple({axis: dims[name] for axis, name in spec.dynamic.get(k, {}).items()} or None for k in spec.inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(spec.module, args, dynamo=True, input_names=list(spec.inputs),
                                    output_names=spec.outputs, dynamic_shapes=shapes if dynamic else None,
                                    external_data=False, verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def _versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "torchvision", "timm", "onnxscript", "onnx", "onnxruntime"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - a missing package has no version
            continue
    return found


def build_entry(entry: Entry, out: Path, exporters: tuple[str, ...] = EXPORTERS, quiet: bool = False) -> dict:
    """Build one entry into `out`; returns (and writes as NAME.json) its record."""
    torch = _torch()
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"name": entry.name, "family": entry.family, "description": entry.description,
                              "format": FORMAT, "versions": _versions(), "exports": {}}
    started = time.perf_counter()
    spec = entry.make()
    with torch.no_grad():
        reference = _flatten(spec.module(*(torch.from_numpy(v) for v in spec.inputs.values())))
    if len(reference) != len(spec.outputs):
        raise RuntimeError(f"{entry.name}: forward returned {len(reference)} outputs, expected {spec.outputs}")
    np.savez(out / f"{entry.name}.inputs.npz", **spec.inputs)
    np.savez(out / f"{entry.name}.torch.npz", **{k: v.detach().numpy() for k, v in zip(spec.outputs, reference,
                                                                                        strict=True)})
    record["inputs"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in spec.inputs.items()}
    record["outputs"] = spec.outputs
    record["dynamic"] = spec.dynamic
    record["make_seconds"] = round(time.perf_counter() - started, 2)
    for exporter in exporters:
        path = out / f"{entry.name}-{exporter}.onnx"
        path.unlink(missing_ok=True)
        status: dict[str, Any] = {"file": path.name}
        started = time.perf_counter()
        noise = io.StringIO()
        try:
            with contextlib.redirect_stdout(noise) if quiet else contextlib.nullcontext():
                if exporter == "ts":
                    export_ts(spec, path)
                    status.update(status="ok", dynamic=True)
                else:
                    try:
                        export_dynamo(spec, path, dynamic=True)
                        status.update(status="ok", dynamic=True)
                    except Exception as error:  # noqa: BLE001 - retried with static shapes, reason kept
                        status["dynamic_failed"] = _first_line(error)
                        path.unlink(missing_ok=True)
                        export_dynamo(spec, path, dynamic=False)
                        status.update(status="ok", dynamic=False)
        except Exception as error:  # noqa: BLE001 - a failing export is a result, recorded with its reason
            path.unlink(missing_ok=True)
            status.update(status="failed", reason=_first_line(error),
                          traceback=traceback.format_exc(limit=-3).splitlines()[-6:])
        status["seconds"] = round(time.perf_counter() - started, 2)
        record["exports"][exporter] = status
    (out / f"{entry.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def cached(entry: Entry, out: Path) -> dict | None:
    """The entry's record when it was built already (same format), else None."""
    meta = out / f"{entry.name}.json"
    if not meta.exists():
        return None
    try:
        record = json.loads(meta.read_text())
    except ValueError:
        return None
    if record.get("format") != FORMAT or not (out / f"{entry.name}.inputs.npz").exists():
        return None
    for status in record.get("exports", {}).values():
        if status.get("status") == "ok" and not (out / status["file"]).exists():
            return None
    return record


def build(names: list[str] | None = None, out: Path = DEFAULT_OUT, *, force: bool = False, quiet: bool = False,
          log: Callable[[str], None] = print) -> dict[str, dict]:
    """Build the named entries (default all) into `out`; returns name -> record (skipped ones: a reason)."""
    records: dict[str, dict] = {}
    for entry in ENTRIES if not names else [BY_NAME[n] for n in names]:
        problem = package_problem(entry.family)
        if problem:
            log(f"skip {entry.name}: {problem}")
            records[entry.name] = {"name": entry.name, "skipped": problem}
            continue
        if not force and (record := cached(entry, out)):
            records[entry.name] = record
            log(f"cached {entry.name}")
            continue
        try:
            record = build_entry(entry, out, quiet=quiet)
        except Exception as error:  # noqa: BLE001 - one model's failure must not stop the others
            log(f"FAILED {entry.name}: model or reference: {_first_line(error)}")
            records[entry.name] = {"name": entry.name, "failed": _first_line(error)}
            continue
        records[entry.name] = record
        parts = []
        for exporter, status in record["exports"].items():
            if status["status"] != "ok":
                parts.append(f"{exporter} FAILED ({status['reason']})")
            elif not status["dynamic"]:
                parts.append(f"{exporter} static ({status['dynamic_failed']})")
            else:
                parts.append(f"{exporter} ok {status['seconds']:.1f}s")
        log(f"built {entry.name}: " + "; ".join(parts))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"cache folder (default {DEFAULT_OUT})")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(BY_NAME), help="these entries only")
    parser.add_argument("--force", action="store_true", help="rebuild entries already in the cache")
    parser.add_argument("--list", action="store_true", help="list the entries and whether their packages import")
    parser.add_argument("--verbose", action="store_true", help="show the exporters' own progress output")
    args = parser.parse_args(argv)
    if args.list:
        for entry in ENTRIES:
            problem = package_problem(entry.family)
            skip = f"  [skip: {problem}]" if problem else ""
            print(f"{entry.name:22} {entry.family:13} {entry.description}{skip}")
        return 0
    if not args.verbose:  # torch.onnx logs a warning per torchvision op it cannot register, and more
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    records = build(args.only, args.out.expanduser(), force=args.force, quiet=not args.verbose)
    failed = [n for n, r in records.items() if "failed" in r]
    print(f"{len(records)} entries, {len(failed)} failed to build, into {args.out}")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # `python models/zoo/build.py`: the same as `python -m models.zoo.build`
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
