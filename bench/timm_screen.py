"""Screen timm architectures for the ``timm`` dataset family → ``seernet/spaces/timm_archs.json``.

Candidates: every timm model name except the very large (``large``/``huge``/``giant``, > 120 M parameters,
high-resolution variants), the pretrained-weight aliases of one architecture (``tf_``, ``legacy_``,
``_in22k``, ``_clip`` …) and a hand-kept list, then at most three names per name prefix (``resnet``,
``convnext`` …), spread over the sorted names.  Each is built (``pretrained=False``), exported with our
exporter at its default resolution and batch 2, and turned into our graph at batch 1; what fails is kept
with its error (the failures are shape-inference gaps: issue 13).  The table keeps those that built, minus
the architectures torchvision ships as classification models (kept out of training: real-architecture
accuracy is checked on them).

Run: ``python bench/timm_screen.py --shard 0/2`` and ``--shard 1/2`` on the two cores (resumable), then
``python bench/timm_screen.py --collect``.  About ten minutes on two cores.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seernet.spaces.timm_space import ARCHS_FILE  # noqa: E402
from seernet.torchvision_compat import ensure_torchvision_importable  # noqa: E402

WORK = Path(__file__).resolve().parent / "results" / "timm_screen"
MAX_PARAMS = 120e6
EXCLUDE = re.compile(
    r"large|huge|giant|xlarge|xxl|bigg|7b|_(448|384|512|336|320|300|288|280|260|256|240)|_in22k|_clip|_siglip|"
    r"_dino|_mae|_reg\d|_gap|_rope|_ibot|_fs|_so|_xp|_e\d|_ns$|_mmlp|_rn|pwee|1k|_dm|"
    r"^(eva|aimv|sam|gemma|qwen|deepseek|test_|naflex|vit_|tf_|legacy_|nasnet|pnasnet|hiera|mvitv2|maxxvit|"
    r"coatnet|vitamin|flexivit|crossvit|volo|cait|efficientvim|lowformer|iformer|dm_|csatv|sequencer)|"
    r"^(xcit_[lm]|nfnet_f[3-9]|mambaout_b|davit_b|focalnet_b|gcvit_b|nextvit_l|regnet[xy]_(3|[1-9]\d\d)|"
    r"resnetrs(2|3|4)|resnet(2|1)\d\d|seresnet(2|1)\d\d|resnest(2|1)\d\d|efficientnet_b[5-8]|efficientnet_l|"
    r"hrnet_w(4|6)|dpn1|repvgg_d|swinv2_cr_(s|b|l|h|g)|convnext_(x|l|b)|convnextv2_(l|h|b)|beitv2_l|"
    r"deit3_(l|h|m)|pvt_v2_b[45]|twins_(svt|pcpvt)_l|levit_conv|inception_next_b|rdnet_l|fastvit_ma|"
    r"starnet_s(100|150)|tnt_b|convit_b)")
EXTRA = ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_small_patch32_224", "vit_base_patch32_224",
         "vit_tiny_r_s16_p8_224", "vit_medium_patch16_gap_256", "vit_little_patch16_reg1_gap_256",
         "tf_efficientnet_b0", "tf_efficientnet_lite0", "tf_mixnet_s", "tf_mobilenetv3_small_075",
         "tf_efficientnetv2_b0", "coatnet_nano_rw_224", "coatnet_0_rw_224", "maxxvit_rmlp_nano_rw_256",
         "crossvit_tiny_240", "crossvit_9_240", "cait_xxs24_224", "volo_d1_224", "xcit_tiny12_p16_224",
         "hiera_tiny_224", "mvitv2_tiny", "vitamin_small_224", "flexivit_small", "sequencer2d_s",
         "efficientvit_b0", "legacy_seresnet18", "legacy_senet154")
# timm names of (or equal to) torchvision's classification models: never training data
TORCHVISION = re.compile(
    r"^(resnet(18|34|50|101|152)|resnext(50_32x4d|101_32x8d|101_64x4d)|wide_resnet(50|101)_2|vgg\d+(_bn)?|"
    r"densenet(121|161|169|201)|inception_v3|mobilenetv2_100|mobilenetv3_(large|small)_100|"
    r"efficientnet_b[0-7]|efficientnetv2_[sml]|tf_efficientnetv2_[sml]|convnext_(tiny|small|base|large)|"
    r"regnet[xy]_(002|004|008|016|032|040|064|080|120|160|320)|vit_(base|large|huge)_patch(14|16|32)_224|"
    r"swin_(tiny|small|base)_patch4_window7_224|swinv2_(tiny|small|base)_window(8|16)_256|maxvit_tiny_tf_224|"
    r"mnasnet_(050|075|100|130)|shufflenet.*|squeezenet.*|googlenet|alexnet)$")


def candidates() -> list[str]:
    ensure_torchvision_importable()
    import timm

    names = sorted({n for n in timm.list_models() if not EXCLUDE.search(n)} | set(EXTRA))
    prefixes: dict[str, list[str]] = {}
    for name in names:
        prefixes.setdefault(re.split(r"[_\d]", name)[0], []).append(name)
    picked = []
    for group in prefixes.values():
        k = min(3, len(group))
        picked += [group[i] for i in sorted({round(j * (len(group) - 1) / max(k - 1, 1)) for j in range(k)})]
    return sorted(picked)


def screen_one(name: str) -> dict:
    import torch
    import timm

    from seernet.export import export_module
    from seernet.graph import build_graph

    record: dict = {"name": name}
    started = time.monotonic()
    try:
        model = timm.create_model(name, pretrained=False).eval()
        record["params"] = int(sum(p.numel() for p in model.parameters()))
        cfg = getattr(model, "pretrained_cfg", None) or {}
        record["resolution"] = int(cfg.get("input_size", (3, 224, 224))[-1])
        record["fixed_input_size"] = bool(cfg.get("fixed_input_size", False))
        if record["params"] > MAX_PARAMS:
            raise ValueError(f"over {MAX_PARAMS:.0f} parameters")
        data = export_module(model, torch.randn(2, 3, record["resolution"], record["resolution"]))
        graph = build_graph(data, batch_size=1)
        record.update(ok=True, gflops=graph.global_value("flops_sum") / 1e9, nodes=graph.num_nodes)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, kept with its message
        record.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
    record["seconds"] = round(time.monotonic() - started, 2)
    return record


def run_shard(k: int, shards: int) -> None:
    import torch

    torch.set_num_threads(1)
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"shard{k}.jsonl"
    done = {json.loads(line)["name"] for line in out.read_text().splitlines()} if out.exists() else set()
    for name in candidates()[k::shards]:
        if name not in done:
            record = screen_one(name)
            with out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record)[:160], flush=True)


def collect() -> None:
    import timm

    records = [json.loads(line) for path in sorted(WORK.glob("shard*.jsonl")) for line in path.read_text().splitlines()]
    ok = [r for r in records if r["ok"] and not TORCHVISION.match(r["name"])]
    failed = [r for r in records if not r["ok"]]
    archs = [{k: r[k] for k in ("name", "params", "gflops", "resolution", "fixed_input_size", "nodes")}
             for r in sorted(ok, key=lambda r: r["name"])]
    ARCHS_FILE.write_text(json.dumps({
        "timm_version": timm.__version__, "screened": len(records),
        "excluded_torchvision": sorted(r["name"] for r in records if r["ok"] and TORCHVISION.match(r["name"])),
        "failed": {r["name"]: r["error"] for r in sorted(failed, key=lambda r: r["name"])},
        "archs": archs}, indent=1) + "\n")
    print(f"{len(records)} screened, {len(archs)} in the table, {len(failed)} failed → {ARCHS_FILE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shard", default="0/1", help="k/K: screen every K-th candidate from k")
    parser.add_argument("--collect", action="store_true", help="write the table from the screened shards")
    args = parser.parse_args()
    if args.collect:
        ensure_torchvision_importable()
        collect()
    else:
        k, shards = map(int, args.shard.split("/"))
        run_shard(k, shards)


if __name__ == "__main__":
    main()
