"""The real-architecture families: timm's screened table, the held-out split, the torchvision import that
timm and transformers need, and Hugging Face models of every supported type built from configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seernet.export import export_config
from seernet.graph import build_graph
from seernet.spaces import ModelConfig, check_config, get_space
from seernet.spaces.hf_space import MODEL_TYPES
from seernet.spaces.timm_space import arch_table, held_out_archs, training_archs
from seernet.torchvision_compat import ensure_torchvision_importable
from seernet.zoo import TORCHVISION_MODELS


def test_torchvision_imports_beside_the_cpu_torch_and_builds_its_models():
    ensure_torchvision_importable()
    import torchvision.models

    model = torchvision.models.get_model("resnet18", weights=None)
    assert sum(p.numel() for p in model.parameters()) == 11_689_512  # torchvision's published figure


def test_the_timm_table_is_broad_and_keeps_torchvision_and_held_out_architectures_out_of_training():
    table = arch_table()
    assert len(table) >= 150
    assert set(training_archs()).isdisjoint(held_out_archs())
    assert set(training_archs()) | set(held_out_archs()) == set(table)
    assert 0.1 < len(held_out_archs()) / len(table) < 0.25
    twins = {"resnet18", "resnet50", "mobilenetv2_100", "efficientnet_b0", "densenet121", "convnext_tiny"}
    assert not twins & set(table)
    assert not set(TORCHVISION_MODELS) & set(training_archs())
    space = get_space("timm")
    drawn = {c.arch["model"] for c in space.sample_n(200, seed=0)}
    assert drawn <= set(training_archs()) and len(drawn) > 100


def test_a_timm_config_is_checked_against_the_table():
    with pytest.raises(ValueError, match="not a screened timm architecture"):
        check_config(ModelConfig("timm", {"model": "resnet50"}, 1, 224), 10**9, 1e6)
    fixed = next(n for n, a in arch_table().items() if a["fixed_input_size"])
    with pytest.raises(ValueError, match="fixed input size"):
        check_config(ModelConfig("timm", {"model": fixed}, 1, arch_table()[fixed]["resolution"] // 2), 10**9, 1e6)


def test_a_timm_model_exports_with_the_parameters_and_flops_the_table_records():
    name = min(training_archs(), key=lambda n: arch_table()[n]["gflops"])
    entry = arch_table()[name]
    config = ModelConfig("timm", {"model": name}, 1, entry["resolution"], seed=3)
    graph = build_graph(export_config(config), batch_size=1)
    module = get_space("timm").build_seeded(config)
    assert graph.global_value("params_sum") == pytest.approx(sum(p.numel() for p in module.parameters()), rel=0.02)
    assert graph.global_value("flops_sum") / 1e9 == pytest.approx(entry["gflops"], rel=1e-6)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_hf_model_type_builds_exports_and_runs_like_torch(model_type):
    import onnxruntime as ort

    space = get_space("hf")
    arch = {"model_type": model_type, "hidden": 64, "layers": 2, "heads": 2, "intermediate": 128,
            "vocab_size": 500}
    if model_type in ("llama", "mistral", "qwen2"):
        arch["kv_heads"] = 1
    config = check_config(ModelConfig("hf", arch, 2, 16, seed=1), 10**8, 10.0)
    data = export_config(config)
    graph = build_graph(data, batch_size=2)
    module = space.build_seeded(config)
    params = sum(p.numel() for p in module.parameters())
    assert graph.global_value("params_sum") == pytest.approx(params, rel=0.05)
    assert space.forward_flops(config) == pytest.approx(graph.global_value("flops_sum"), rel=0.25)
    example = space.example_input(config)
    (got,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": example.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, module(example).numpy(), rtol=1e-3, atol=1e-4)


def test_hf_arch_errors_name_the_problem():
    with pytest.raises(ValueError, match="multiple of heads"):
        check_config(ModelConfig("hf", {"model_type": "bert", "hidden": 100, "layers": 1, "heads": 3,
                                        "intermediate": 64, "vocab_size": 500}, 1, 16), 10**8, 10.0)
    with pytest.raises(ValueError, match="kv_heads"):
        check_config(ModelConfig("hf", {"model_type": "bert", "hidden": 64, "layers": 1, "heads": 2, "kv_heads": 1,
                                        "intermediate": 64, "vocab_size": 500}, 1, 16), 10**8, 10.0)


def _timm_graph(module, size: int):
    from seernet.export import export_module

    return build_graph(export_module(module.eval(), torch.randn(2, 3, size, size)), batch_size=1)


def test_tf_same_padding_computed_in_floating_point_is_followed_to_a_known_shape():
    """timm's Conv2dSame pads by ceil(size / stride) arithmetic the exporter writes in float (Cast, Div,
    Clip): onnx's own inference stops there; the shape sub-graph is evaluated instead."""
    ensure_torchvision_importable()
    from timm.layers import Conv2dSame

    graph = _timm_graph(Conv2dSame(3, 8, 3, stride=2), 31)
    conv = graph.op_types.index("Conv")
    macs = graph.node_x[conv, 1]
    assert macs == 8 * 3 * 3 * 3 * 16 * 16  # 31 padded to 33, stride 2: 16 × 16 outputs


def test_windowed_attention_with_run_time_padding_builds():
    """Swin pads each stage's feature map to a multiple of the window at run time (Pad of computed sizes)."""
    ensure_torchvision_importable()
    import timm

    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1, 1, 1),
                              embed_dim=32, num_heads=(1, 1, 1, 1))
    graph = _timm_graph(model, 224)
    assert "Pad" in graph.op_types or "Slice" in graph.op_types
    params = sum(p.numel() for p in model.parameters())
    assert graph.global_value("params_sum") == pytest.approx(params, rel=0.05)


def test_the_published_hf_models_lie_outside_the_hf_family_and_the_zoo_exports_them_at_their_sizes():
    """The zoo's ``hf`` group checks real text models: none may be a configuration the family could draw, and
    one (ELECTRA-small, the smallest) exports at its published size: 13.5 M parameters beside the head."""
    from seernet.spaces.hf_space import HFClassifier
    from seernet.strip import strip_bytes
    from seernet.zoo import HF_MODELS, HF_SEQUENCE, hf_arch, zoo_names, zoo_onnx

    space = get_space("hf")
    drawn = {tuple(sorted(c.arch.items())) for c in space.sample_n(500, seed=0)}
    assert drawn and not drawn & {tuple(sorted(hf_arch(n).items())) for n in HF_MODELS}
    assert zoo_names("hf") == [f"hf:{n}" for n in HF_MODELS]
    graph = build_graph(strip_bytes(zoo_onnx("hf:electra-small-discriminator")), batch_size=4)
    torch.manual_seed(0)
    params = sum(p.numel() for p in HFClassifier(hf_arch("electra-small-discriminator")).parameters())
    assert 13e6 < params < 14.5e6
    assert graph.global_value("params_sum") == pytest.approx(params, rel=0.02)
    assert graph.global_value("batch_size") == 4 and graph.global_value("input_bytes") == 4 * HF_SEQUENCE * 8
