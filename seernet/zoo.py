"""Real architectures, written to match torchvision/timm layer for layer (no weights downloaded).

torchvision's own package cannot be installed beside our torch build, so these
re-implementations serve to check our counters against torchvision's published
figures, to benchmark graph building on ResNet-50-sized models, and to test
predictors on architectures none of our spaces produced.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .data import METRICS, Sample
from .spaces.transformer import BertEncoder, ViT

# torchvision's documented figures: (parameters, GMACs at 224x224) — its "GFLOPS" column counts MACs.
PUBLISHED = {
    "resnet18": (11_689_512, 1.81),
    "resnet50": (25_557_032, 4.09),
    "mobilenet_v2": (3_504_872, 0.30),
    "vgg11": (132_863_336, 7.61),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + self.downsample(x))


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    def __init__(self, block: type, layers: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages, c = [], 64
        for i, depth in enumerate(layers):
            planes = 64 * 2**i
            blocks = []
            for j in range(depth):
                blocks.append(block(c, planes, 2 if (j == 0 and i > 0) else 1))
                c = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _conv_bn_relu6(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True))


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
        c = 32
        for t, out, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(_conv_bn_relu6(c, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn_relu6(c_in, hidden, 1, 1)]
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, c_out, 1, bias=False),
                   nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def vgg11(num_classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c = int(v)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 49, 4096), nn.ReLU(True),
                         nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))


ZOO: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]] = {
    "resnet18": (lambda: ResNet(BasicBlock, [2, 2, 2, 2]), lambda b: torch.randn(b, 3, 224, 224)),
    "resnet50": (lambda: ResNet(Bottleneck, [3, 4, 6, 3]), lambda b: torch.randn(b, 3, 224, 224)),
    "resnet152": (lambda: ResNet(Bottleneck, [3, 8, 36, 3]), lambda b: torch.randn(b, 3, 224, 224)),
    "mobilenet_v2": (MobileNetV2, lambda b: torch.randn(b, 3, 224, 224)),
    "vgg11": (vgg11, lambda b: torch.randn(b, 3, 224, 224)),
    "vit_tiny_patch16_224": (lambda: ViT({"width": 192, "depth": 12, "heads": 3, "mlp_ratio": 4.0, "patch_size": 16},
                                         224, 1000), lambda b: torch.randn(b, 3, 224, 224)),
    "bert_mini": (lambda: BertEncoder({"width": 256, "depth": 4, "heads": 4, "mlp_ratio": 4.0, "vocab_size": 30522}, 128),
                  lambda b: torch.zeros(b, 128, dtype=torch.long)),
}


# torchvision's own classification models (torchvision.models.get_model, weights=None): never training data
# (timm's twins of them are kept out of the timm family, seernet.spaces.timm_space)
TORCHVISION_MODELS = (
    "alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_b1", "efficientnet_b3",
    "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet1_0", "mobilenet_v2",
    "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_400mf", "regnet_x_1_6gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_1_6gf", "resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1", "swin_t", "swin_v2_t",
    "vgg11", "vgg16", "vit_b_16", "vit_b_32", "wide_resnet50_2")


# Published Hugging Face text models at their own sizes (transformers' modelling code from a config, random
# weights, nothing downloaded; the ``hf`` family's classifier head): model type, hidden, layers, heads, MLP
# width, vocabulary (and key/value heads).  Never training data: the ``hf`` family draws vocabularies of exactly
# 1,000, 8,000 or 32,000 tokens and at most 6 layers, and none of these has such a vocabulary (most are deeper,
# too), so none is a configuration it can draw (tested).  Every one reads sequences of HF_SEQUENCE tokens.
HF_MODELS = {
    "bert-base-uncased": ("bert", 768, 12, 12, 3072, 30522), "bert-small": ("bert", 512, 4, 8, 2048, 30522),
    "distilbert-base-uncased": ("distilbert", 768, 6, 12, 3072, 30522),
    "roberta-base": ("roberta", 768, 12, 12, 3072, 50265), "albert-base-v2": ("albert", 768, 12, 12, 3072, 30000),
    "electra-small-discriminator": ("electra", 256, 12, 4, 1024, 30522), "gpt2": ("gpt2", 768, 12, 12, 3072, 50257),
    "pythia-70m": ("gpt_neox", 512, 6, 8, 2048, 50304), "pythia-160m": ("gpt_neox", 768, 12, 12, 3072, 50304),
    "t5-small-encoder": ("t5", 512, 6, 8, 2048, 32128), "SmolLM-135M": ("llama", 576, 30, 9, 1536, 49152, 3)}
HF_SEQUENCE = 128


def hf_arch(name: str) -> dict:
    """The ``hf`` space's arch dict of published model ``name`` (:data:`HF_MODELS`)."""
    kind, hidden, layers, heads, intermediate, vocab, *kv = HF_MODELS[name]
    arch = {"model_type": kind, "hidden": hidden, "layers": layers, "heads": heads, "intermediate": intermediate,
            "vocab_size": vocab}
    return {**arch, "kv_heads": kv[0]} if kv else arch


ZOO_GROUPS = ("zoo", "torchvision", "timm", "hf")  # what zoo_names answers, in the benches' default order


def zoo_names(group: str) -> list[str]:
    """``zoo``: our layer-for-layer re-implementations; ``torchvision``: its models (``torchvision:<name>``);
    ``timm``: the timm architectures held out of the timm family (``timm:<name>``); ``hf``: published Hugging
    Face text models (``hf:<name>``, :data:`HF_MODELS`)."""
    from .spaces.timm_space import held_out_archs

    if group not in ZOO_GROUPS:
        raise ValueError(f"unknown zoo group {group!r}; known: {sorted(ZOO_GROUPS)}")
    groups = {"zoo": list(ZOO), "torchvision": [f"torchvision:{n}" for n in TORCHVISION_MODELS],
              "timm": [f"timm:{n}" for n in held_out_archs()], "hf": [f"hf:{n}" for n in HF_MODELS]}
    return groups[group]


def _is_zoo_name(name: str) -> bool:
    kind, _, rest = name.partition(":")
    if not rest:
        return name in ZOO
    if kind == "torchvision":
        return rest in TORCHVISION_MODELS
    if kind == "timm":
        from .spaces.timm_space import arch_table

        return rest in arch_table()
    return kind == "hf" and rest in HF_MODELS


def zoo_onnx(name: str, batch_size: int = 1) -> bytes:
    """The ONNX export of zoo model ``name`` (random weights, symbolic batch): one of ours, ``torchvision:<name>``,
    ``timm:<name>`` (at its default resolution) or ``hf:<name>`` (:data:`HF_SEQUENCE` tokens)."""
    from .export import export_module

    if not _is_zoo_name(name):
        raise ValueError(f"unknown zoo model {name!r}; known: {sorted(ZOO)}, torchvision:<{'|'.join(TORCHVISION_MODELS)}>"
                         ", timm:<a screened timm architecture>, hf:<" + "|".join(HF_MODELS) + ">")
    torch.manual_seed(0)
    kind, _, rest = name.partition(":")
    if kind == "hf":
        from .spaces.hf_space import HFClassifier

        arch = hf_arch(rest)
        ids = torch.randint(0, arch["vocab_size"], (max(2, batch_size), HF_SEQUENCE))
        return export_module(HFClassifier(arch), ids)
    if kind == "timm":
        from .export import export_config
        from .spaces import ModelConfig
        from .spaces.timm_space import arch_table

        return export_config(ModelConfig("timm", {"model": rest}, 1, int(arch_table()[rest]["resolution"])))
    if kind == "torchvision":
        from .torchvision_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        import torchvision.models

        size = 299 if rest == "inception_v3" else 224
        model = torchvision.models.get_model(rest, weights=None)
        return export_module(model, torch.randn(max(2, batch_size), 3, size, size))
    build, example = ZOO[name]
    return export_module(build(), example(max(2, batch_size)))


def measured_zoo_samples(path: str | Path) -> list[Sample]:
    """Zoo models measured on one device (``bench/results/zoo_measured.json``: rows with ``model``,
    ``batch_size``, ``status`` and metric columns) as samples; rows that did not measure ``ok`` are skipped.

    Why: these architectures lie outside every training space, so they test what a random holdout
    cannot — extrapolation.  Promotion uses them as a guard set (``perfseer retrain --guard``).
    """
    rows = [r for r in json.loads(Path(path).read_text())["rows"] if r.get("status", "ok") == "ok"]
    try:
        return zoo_samples(rows)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def zoo_samples(rows: list[dict]) -> list[Sample]:
    """One sample per measured row, in order, its graph built from the stripped export exactly as
    a client would send it."""
    from .graph import build_graph
    from .strip import strip_bytes

    unknown = sorted(r["model"] for r in rows if not _is_zoo_name(r["model"]))
    if unknown:
        raise ValueError(f"models {unknown} are not in the zoo; known: {sorted(ZOO)}, torchvision:<name>, timm:<name>, "
                         "hf:<name>")
    stripped = {name: strip_bytes(zoo_onnx(name)) for name in {r["model"] for r in rows}}
    return [Sample(key=f"zoo:{r['model']}:b{r['batch_size']}", family="zoo",
                   graph=build_graph(stripped[r["model"]], batch_size=int(r["batch_size"])),
                   targets={m: float(r[m]) for m in METRICS if r.get(m) is not None})
            for r in rows]
