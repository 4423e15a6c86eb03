"""Prove migue's backbones compute what the reference implementations compute.

Both sides are built from the same random weights (no downloads): the reference's own
modules make the weights, they are saved in the released format, migue loads that file
through `create_extractor(..., checkpoint=...)`, and both run on the same input.

(a) MViTv2-S: torchvision `video.mvit_v2_s` (head removed) vs migue's `mvit` (mmaction2 MViT)
    loaded from torchvision's state_dict: class token and all final-norm tokens.
(b) SwinFace: the reference backbone (`swinface_project/backbones/swin.py` of a checkout of
    github lxq1000/SwinFace, given by --swinface-repo; nothing of it is shipped here) vs
    migue's `swinface` loaded from an official-format checkpoint: the 512-d embedding.

torchvision does not import beside the project's CPU torch wheel, so run this in a second
virtualenv with torch + torchvision and the OpenMMLab stack (scripts/install.sh's pins and
flags, without its torch step), migue installed into it with --no-deps:

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install "setuptools<81" wheel cython torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/pip install "mmengine==0.10.7" "mmcv-lite==2.1.0" importlib_metadata six munkres
    /tmp/tvenv/bin/pip install --no-deps "mmaction2==1.2.0" "mmpose==1.3.2"
    /tmp/tvenv/bin/pip install --no-deps --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
    /tmp/tvenv/bin/pip install --no-deps -e .          # timm optional (the reference imports it)
    /tmp/tvenv/bin/python scripts/check_equivalence.py --swinface-repo /path/to/SwinFace

Exit status 0 when every difference is within --tolerance.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import types
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter and BatchNorm statistic away from its default init, so that nothing
    (LayerNorm weight = 1, bias = 0, zero-init tables) can hide a mapping mistake."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("weight") and p.ndim == 1:      # norm scales
                p.copy_(1 + 0.2 * noise)
            elif "rel_pos" in name or "relative_position_bias_table" in name:
                p.copy_(0.2 * noise)
            elif p.ndim == 1 or "token" in name:             # biases, class token
                p.copy_(0.05 * noise)
            else:                                             # matrices, convolutions
                fan_in = max(1, p[0].numel())
                p.copy_(noise / fan_in ** 0.5)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def check_mvit(args: argparse.Namespace, tmp: Path) -> list[tuple[str, float]]:
    from torchvision.models.video import mvit_v2_s

    from migue.extractors import convert_torchvision_mvit
    from migue.extractors.registry import create_extractor

    torch.manual_seed(args.seed)
    ref = mvit_v2_s(weights=None).eval()
    randomise(ref, args.seed)
    state = ref.state_dict()
    path = tmp / "mvit_v2_s-random.pth"
    torch.save(state, path)  # torchvision's format: a plain state_dict
    mapped, dropped, unknown = convert_torchvision_mvit.convert(state)
    print("(a) MViTv2-S: torchvision mvit_v2_s (random weights, head removed) vs migue 'mvit' "
          "(mmaction2 MViT arch=small) loaded from that state_dict")
    print(f"    keys: {len(state)} torchvision -> {len(mapped)} mapped, {len(dropped)} dropped "
          f"({', '.join(dropped)}), {len(unknown)} without counterpart")

    ours = create_extractor("mvit", checkpoint=str(path), arch="small", frames=16, size=224)
    g = torch.Generator().manual_seed(args.seed + 1)
    clip = torch.randint(0, 256, (args.batch, 16, 224, 224, 3), dtype=torch.uint8, generator=g)
    # torchvision's transform: [0, 1] then mean 0.45, std 0.225 (per channel, all equal).
    x = clip.permute(0, 4, 1, 2, 3).float() / 255.0
    x = (x - 0.45) / 0.225
    normed = {}
    ref.norm.register_forward_hook(lambda m, i, o: normed.__setitem__("tokens", o))
    ref.head = torch.nn.Identity()  # "with the head removed": forward returns norm(x)[:, 0]
    with torch.no_grad():
        ref_cls = ref(x)
        out = ours(clip)
    ref_tokens = normed["tokens"][:, 1:]
    d_cls = (out["cls"][:, 0] - ref_cls).abs().max().item()
    d_tok = (out["tokens"] - ref_tokens).abs().max().item()
    print(f"    input {tuple(clip.shape)} uint8, torch threads {torch.get_num_threads()}")
    print(f"    class token ({ref_cls.shape[-1]}-d): max |diff| = {d_cls:.3e}   (max |value| "
          f"{ref_cls.abs().max().item():.3f})")
    print(f"    patch tokens {tuple(ref_tokens.shape[1:])}: max |diff| = {d_tok:.3e}   (max |value| "
          f"{ref_tokens.abs().max().item():.3f})")
    return [("mvit class token", d_cls), ("mvit patch tokens", d_tok)]


def _import_reference(repo: Path) -> types.ModuleType:
    project = repo / "swinface_project"
    if not (project / "backbones" / "swin.py").is_file():
        raise SystemExit(f"--swinface-repo {repo}: no swinface_project/backbones/swin.py there")
    try:
        import timm.models.layers  # noqa: F401  (what the reference imports)
    except ImportError:  # a minimal stand-in: only used at inference, where DropPath is identity
        print("    (timm not installed: the reference's DropPath/to_2tuple/trunc_normal_ come from a stand-in)")
        layers = types.ModuleType("timm.models.layers")

        class DropPath(torch.nn.Identity):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__()

        layers.DropPath = DropPath
        layers.to_2tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
        layers.trunc_normal_ = lambda t, std=1.0, **kw: torch.nn.init.trunc_normal_(t, std=std)
        for name in ("timm", "timm.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["timm.models.layers"] = layers
    spec = importlib.util.spec_from_file_location("swinface_reference_swin", project / "backbones" / "swin.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _reference_subnets(repo: Path) -> dict[str, dict] | None:
    """fam/tss/om state dicts from the reference's own build_model, so the written file has the
    release's four entries; None when the analysis subnets cannot be built here."""
    project = str(repo / "swinface_project")
    sys.path.insert(0, project)
    # analysis/__init__.py imports its training-time evaluation helpers (tensorboard, timm.data);
    # only analysis/subnets.py is needed, so the package is entered without running __init__.
    analysis = types.ModuleType("analysis")
    analysis.__path__ = [str(repo / "swinface_project" / "analysis")]
    saved = {name: sys.modules.pop(name) for name in ("analysis", "model", "backbones") if name in sys.modules}
    sys.modules["analysis"] = analysis
    try:
        from model import build_model  # the reference's model.py

        class Cfg:  # the values of inference.py's SwinFaceCfg
            network = "swin_t"
            fam_kernel_size = 3
            fam_in_chans = 2112
            fam_conv_shared = False
            fam_conv_mode = "split"
            fam_channel_attention = "CBAM"
            fam_spatial_attention = None
            fam_pooling = "max"
            fam_la_num_list = [2 for _ in range(11)]
            fam_feature = "all"
            fam = "3x3_2112_F_s_C_N_max"
            embedding_size = 512

        box = build_model(Cfg())
        return {"state_dict_fam": box.fam.state_dict(), "state_dict_tss": box.tss.state_dict(),
                "state_dict_om": box.om.state_dict()}
    except Exception as exc:  # noqa: BLE001
        print(f"    (could not build the reference's analysis subnets: {type(exc).__name__}: {exc}; "
              "writing empty fam/tss/om)")
        return None
    finally:
        sys.path.remove(project)
        for name in [n for n in sys.modules if n.split(".")[0] in ("analysis", "model", "backbones")]:
            del sys.modules[name]
        sys.modules.update(saved)


def check_swinface(args: argparse.Namespace, tmp: Path) -> list[tuple[str, float]]:
    from migue.extractors.registry import create_extractor

    print("(b) SwinFace: reference swin.py (lxq1000/SwinFace, SwinTransformer img 112, patch 2, window 7, "
          "depths 2-2-6-2, heads 3-6-12-24, embed 96, 512-d) vs migue 'swinface' loaded from an "
          "official-format checkpoint")
    swin = _import_reference(args.swinface_repo)
    torch.manual_seed(args.seed)
    ref = swin.SwinTransformer(img_size=112, patch_size=2, in_chans=3, num_classes=512, embed_dim=96,
                               depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7).eval()
    randomise(ref, args.seed)
    subnets = _reference_subnets(args.swinface_repo) or {k: {} for k in
                                                         ("state_dict_fam", "state_dict_tss", "state_dict_om")}
    path = tmp / "checkpoint_step_79999_gpu_0.pt"
    torch.save({"state_dict_backbone": ref.state_dict(), **subnets}, path)
    held = sorted(["state_dict_backbone", *subnets])
    print(f"    state_dict_backbone: {len(ref.state_dict())} keys; file holds {held}")

    ours = create_extractor("swinface", checkpoint=str(path), frames=1)
    report = ours.checkpoint_report
    print(f"    loaded as {report.format!r}; dropped {len(report.dropped)} derived/unused keys "
          f"(head.*, attn_mask, relative_position_index)")
    g = torch.Generator().manual_seed(args.seed + 2)
    faces = torch.randint(0, 256, (args.batch * 2, 112, 112, 3), dtype=torch.uint8, generator=g)
    x = faces.permute(0, 3, 1, 2).float()
    x = (x / 255.0 - 0.5) / 0.5  # the reference's inference.py normalisation
    with torch.no_grad():
        _, _, ref_emb = ref(x)
        out = ours(faces.unsqueeze(1))["embedding"][:, 0]
    d = (out - ref_emb).abs().max().item()
    print(f"    input {tuple(faces.shape)} uint8 faces")
    print(f"    embedding (512-d): max |diff| = {d:.3e}   (max |value| {ref_emb.abs().max().item():.3f})")
    return [("swinface embedding", d)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swinface-repo", type=Path, help="checkout of github lxq1000/SwinFace")
    parser.add_argument("--skip-mvit", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    import mmaction
    import mmpose
    import torchvision

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, mmaction2 {mmaction.__version__}, "
          f"mmpose {mmpose.__version__}; float32 on CPU")
    results: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_mvit:
            results += check_mvit(args, Path(tmp))
        if args.swinface_repo:
            results += check_swinface(args, Path(tmp))
        else:
            print("(b) SwinFace: skipped (give --swinface-repo PATH, a checkout of github lxq1000/SwinFace)")
    worst = max((d for _, d in results), default=0.0)
    verdict = "PASS" if worst <= args.tolerance else "FAIL"
    print(f"{verdict}: largest difference {worst:.3e} (tolerance {args.tolerance:g}) over "
          f"{', '.join(name for name, _ in results)}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
