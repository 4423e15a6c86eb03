"""Released checkpoint formats: each loads, gives the expected keys and numbers; bad ones are refused by name.

The checkpoints are written here with random weights, in each release's own key names and
shapes, built from knowledge of the releasing code (torchvision cannot be imported beside the
project's CPU torch, and the SwinFace code is not shipped): torchvision's
`video.mvit_v2_s` state_dict, the official SwinFace dict in Microsoft Swin naming, mmaction2
recognizer checkpoints. scripts/check_equivalence.py runs the real reference code.
"""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from migue.extractors.checkpoints import CheckpointError
from migue.extractors.registry import create_extractor
from migue.extractors.weights import CATALOGUE, KnownWeights, detect_format

# ---------------------------------------------------------------- torchvision mvit_v2_s
# Written from torchvision/models/video/mvit.py: MViT(conv_proj, pos_encoding, blocks, norm,
# head = Dropout + Linear), MultiscaleBlock(norm1, norm2, attn, mlp = ops.MLP, project),
# MultiscaleAttention(qkv, project = Sequential(Linear), pool_{q,k,v} = Pool(pool, norm_act),
# rel_pos_{h,w,t}) and mvit_v2_s's block table.
TV_HEADS = [1, 2, 2] + [4] * 11 + [8, 8]
TV_IN = [96, 96, 192, 192] + [384] * 11 + [768]
TV_OUT = [96, 192, 192] + [384] * 11 + [768, 768]
TV_STRIDE_Q = [1, 2, 1, 2] + [1] * 10 + [2, 1]
TV_STRIDE_KV = [8, 4, 4] + [2] * 11 + [1, 1]


def torchvision_mvit_v2_s_state(frames: int, size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    def rnd(*shape: int, scale: float = 0.05, offset: float = 0.0) -> torch.Tensor:
        return offset + scale * torch.randn(*shape, generator=gen)

    sd = {"conv_proj.weight": rnd(96, 3, 3, 7, 7), "conv_proj.bias": rnd(96),
          "pos_encoding.class_token": rnd(96)}
    t, s = frames // 2, size // 4  # conv_proj stride (2, 4, 4)
    for i in range(16):
        p, d_in, d_out, hd = f"blocks.{i}.", TV_IN[i], TV_OUT[i], TV_OUT[i] // TV_HEADS[i]
        sd.update({p + "norm1.weight": rnd(d_in, offset=1), p + "norm1.bias": rnd(d_in),
                   p + "norm2.weight": rnd(d_out, offset=1), p + "norm2.bias": rnd(d_out)})
        spatial = 2 * max(s // TV_STRIDE_Q[i], s // TV_STRIDE_KV[i]) - 1
        sd.update({p + "attn.rel_pos_h": rnd(spatial, hd), p + "attn.rel_pos_w": rnd(spatial, hd),
                   p + "attn.rel_pos_t": rnd(2 * t - 1, hd),
                   p + "attn.qkv.weight": rnd(3 * d_out, d_in), p + "attn.qkv.bias": rnd(3 * d_out),
                   p + "attn.project.0.weight": rnd(d_out, d_out), p + "attn.project.0.bias": rnd(d_out)})
        for x in "qkv":
            sd.update({f"{p}attn.pool_{x}.pool.weight": rnd(hd, 1, 3, 3, 3),
                       f"{p}attn.pool_{x}.norm_act.0.weight": rnd(hd, offset=1),
                       f"{p}attn.pool_{x}.norm_act.0.bias": rnd(hd)})
        sd.update({p + "mlp.0.weight": rnd(4 * d_out, d_out), p + "mlp.0.bias": rnd(4 * d_out),
                   p + "mlp.3.weight": rnd(d_out, 4 * d_out), p + "mlp.3.bias": rnd(d_out)})
        if d_in != d_out:
            sd.update({p + "project.weight": rnd(d_out, d_in), p + "project.bias": rnd(d_out)})
        s //= TV_STRIDE_Q[i]
    sd.update({"norm.weight": rnd(768, offset=1), "norm.bias": rnd(768),
               "head.1.weight": rnd(400, 768), "head.1.bias": rnd(400)})
    return sd


TV_BLOCK_RENAMES = [("attn.project.0.", "attn.proj."), ("mlp.0.", "mlp.fc1."), ("mlp.3.", "mlp.fc2."),
                    ("project.", "proj.")] + [
    (f"attn.pool_{x}.{a}", f"attn.{b}_{x}.") for x in "qkv" for a, b in (("pool.", "pool"), ("norm_act.0.", "norm"))]


def mmaction2_name(tv_key: str) -> str:
    top = {"conv_proj.weight": "patch_embed.projection.weight", "conv_proj.bias": "patch_embed.projection.bias",
           "pos_encoding.class_token": "cls_token", "norm.weight": "norm3.weight", "norm.bias": "norm3.bias"}
    if tv_key in top:
        return top[tv_key]
    _, i, rest = tv_key.split(".", 2)
    for old, new in TV_BLOCK_RENAMES:
        if rest.startswith(old):
            rest = new + rest[len(old):]
            break
    return f"blocks.{i}.{rest}"


MVIT_SMALL = {"arch": "small", "frames": 4, "size": 32}


@pytest.fixture(scope="module")
def tv_checkpoint(tmp_path_factory):
    state = torchvision_mvit_v2_s_state(4, 32, torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("tv") / "mvit_v2_s-random.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def mvit_small():
    torch.manual_seed(5)
    return create_extractor("mvit", **MVIT_SMALL)


def test_torchvision_mvit_loads_every_weight_under_its_mmaction2_name(tv_checkpoint, mvit_small):
    path, state = tv_checkpoint
    report = mvit_small.load_checkpoint(str(path))
    assert report.format == "torchvision-mvit" and report.complete
    assert sorted(report.dropped) == ["head.1.bias", "head.1.weight"]
    own = mvit_small.backbone.state_dict()
    assert len(own) == len(state) - 2
    for key, value in state.items():
        if not key.startswith("head."):
            target = own[mmaction2_name(key)]
            assert torch.equal(target, value.reshape(target.shape)), key
    x = torch.randint(0, 256, (1, 4, 32, 32, 3), dtype=torch.uint8)
    out = mvit_small(x)
    assert out["cls"].shape == (1, 1, 768) and torch.isfinite(out["tokens"]).all()


@pytest.fixture(scope="module")
def tv_bad_checkpoint(tv_checkpoint):
    """One key missing, one unexpected, one of another shape (rel_pos_t of an 8-frame model)."""
    path, state = tv_checkpoint
    bad = dict(state)
    del bad["blocks.3.attn.pool_k.pool.weight"]
    bad["blocks.0.attn.surprise"] = torch.zeros(1)
    bad["blocks.5.attn.rel_pos_t"] = torch.zeros(7, 96)
    torch.save(bad, path.with_name("bad.pth"))
    return path.with_name("bad.pth")


def test_torchvision_mvit_that_does_not_fit_is_refused_by_name(tv_bad_checkpoint, mvit_small):
    with pytest.raises(CheckpointError) as err:
        mvit_small.load_checkpoint(str(tv_bad_checkpoint))
    message = str(err.value)
    assert "missing keys [blocks.3.attn.pool_k.pool.weight (migue: blocks.3.attn.pool_k.weight)]" in message
    assert "unexpected keys [blocks.0.attn.surprise]" in message
    assert "blocks.5.attn.rel_pos_t: checkpoint (7, 96) vs model (3, 96)" in message
    assert "--frames 16" in message  # the hint for a geometry mismatch


def test_non_strict_opt_out_loads_what_fits_and_names_the_rest(tv_checkpoint, tv_bad_checkpoint, caplog):
    _, state = tv_checkpoint
    with caplog.at_level(logging.WARNING, logger="migue.checkpoints"):
        model = create_extractor("mvit", checkpoint=str(tv_bad_checkpoint), strict_checkpoint=False,
                                 **MVIT_SMALL)
    report = model.checkpoint_report
    assert report.missing == ["blocks.3.attn.pool_k.weight"]
    assert report.unexpected == ["blocks.0.attn.surprise"]
    assert report.mismatched == ["blocks.5.attn.rel_pos_t"]
    assert "RANDOM" in caplog.text and "blocks.3.attn.pool_k.pool.weight" in caplog.text
    torch.testing.assert_close(model.backbone.norm3.weight, state["norm.weight"], rtol=0, atol=0)


# ---------------------------------------------------------------- SwinFace, official format
# Written from the SwinFace reference (Microsoft Swin naming, swinface_project/backbones/swin.py):
# PatchEmbed(proj, norm), BasicLayer(blocks, downsample = PatchMerging(reduction, norm)),
# SwinTransformerBlock(norm1, attn = WindowAttention(relative_position_bias_table,
# relative_position_index, qkv, proj), norm2, mlp(fc1, fc2), attn_mask when it shifts), norm,
# head, feature = Linear-BN-Linear-BN.
DEPTHS, HEADS, WIN, SHIFT = (2, 2, 6, 2), (3, 6, 12, 24), 7, 3


def _relative_index(w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    d = coords[:, :, None] - coords[:, None, :] + (w - 1)
    return d[0] * (2 * w - 1) + d[1]


def _shift_mask(res: int, w: int, s: int) -> torch.Tensor:
    label = torch.zeros(res, res)
    bands = (slice(0, -w), slice(-w, -s), slice(-s, None))
    for a, rows in enumerate(bands):
        for b, cols in enumerate(bands):
            label[rows, cols] = 3 * a + b
    n = res // w
    win = label.view(n, w, n, w).permute(0, 2, 1, 3).reshape(n * n, w * w)
    return torch.where(win[:, None, :] - win[:, :, None] != 0, -100.0, 0.0)


def swinface_reference_backbone(gen: torch.Generator) -> dict[str, torch.Tensor]:
    def rnd(*shape: int, scale: float = 0.05, offset: float = 0.0) -> torch.Tensor:
        return offset + scale * torch.randn(*shape, generator=gen)

    def mat(out: int, inp: int) -> torch.Tensor:
        return torch.randn(out, inp, generator=gen) / inp ** 0.5

    def norm(p: str, n: int) -> dict[str, torch.Tensor]:
        return {p + ".weight": rnd(n, scale=0.2, offset=1), p + ".bias": rnd(n)}

    sd = {"patch_embed.proj.weight": rnd(96, 3, 2, 2, scale=0.3), "patch_embed.proj.bias": rnd(96),
          **norm("patch_embed.norm", 96)}
    res = 56
    for i, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        dim = 96 * 2 ** i
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            sd.update({**norm(p + "norm1", dim), **norm(p + "norm2", dim),
                       p + "attn.relative_position_bias_table": rnd((2 * WIN - 1) ** 2, heads, scale=0.3),
                       p + "attn.relative_position_index": _relative_index(WIN),
                       p + "attn.qkv.weight": mat(3 * dim, dim), p + "attn.qkv.bias": rnd(3 * dim),
                       p + "attn.proj.weight": mat(dim, dim), p + "attn.proj.bias": rnd(dim),
                       p + "mlp.fc1.weight": mat(4 * dim, dim), p + "mlp.fc1.bias": rnd(4 * dim),
                       p + "mlp.fc2.weight": mat(dim, 4 * dim), p + "mlp.fc2.bias": rnd(dim)})
            if j % 2 and res > WIN:  # the reference neither shifts nor masks at 7x7 with window 7
                sd[p + "attn_mask"] = _shift_mask(res, WIN, SHIFT)
        if i < 3:
            sd.update({f"layers.{i}.downsample.reduction.weight": mat(2 * dim, 4 * dim),
                       **norm(f"layers.{i}.downsample.norm", 4 * dim)})
            res //= 2
    sd.update({**norm("norm", 768), "head.weight": mat(512, 768), "head.bias": rnd(512)})
    for k, (n_in, n_out) in enumerate(((768, 768), (768, 512))):
        sd[f"feature.{2 * k}.weight"] = mat(n_out, n_in)
        sd.update({**norm(f"feature.{2 * k + 1}", n_out),
                   f"feature.{2 * k + 1}.running_mean": rnd(n_out, scale=0.1),
                   f"feature.{2 * k + 1}.running_var": 0.5 + torch.rand(n_out, generator=gen),
                   f"feature.{2 * k + 1}.num_batches_tracked": torch.tensor(1000)})
    return sd


def _windows_attention(x: torch.Tensor, sd: dict, p: str, res: int, heads: int, shift: int) -> torch.Tensor:
    B, L, C = x.shape
    g = x.view(B, res, res, C)
    if shift:
        g = torch.roll(g, (-shift, -shift), (1, 2))
    n, N = res // WIN, WIN * WIN
    win = g.view(B, n, WIN, n, WIN, C).permute(0, 1, 3, 2, 4, 5).reshape(B * n * n, N, C)
    q, k, v = F.linear(win, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]) \
        .view(-1, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (C // heads) ** -0.5) @ k.transpose(-2, -1)
    table = sd[p + "attn.relative_position_bias_table"]
    attn = attn + table[sd[p + "attn.relative_position_index"].view(-1)].view(N, N, heads).permute(2, 0, 1)
    if shift:
        attn = (attn.view(B, n * n, heads, N, N) + sd[p + "attn_mask"][None, :, None]).view(-1, heads, N, N)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, N, C)
    out = F.linear(out, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    g = out.view(B, n, n, WIN, WIN, C).permute(0, 1, 3, 2, 4, 5).reshape(B, res, res, C)
    if shift:
        g = torch.roll(g, (shift, shift), (1, 2))
    return g.reshape(B, L, C)


def reference_embedding(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """SwinFace's embedding = feature(avgpool(norm(x))), computed from the Microsoft-named weights:
    (shifted) windows with relative bias and masks, patch merging as cat(x0, x1, x2, x3)."""
    def ln(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.layer_norm(t, t.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], 1e-5)

    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(t, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                            sd[p + ".bias"], False, 0.0, 2e-5)

    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=2)
    B, res = x.shape[0], x.shape[-1]
    x = ln(x.flatten(2).transpose(1, 2), "patch_embed.norm")
    for i, (depth, heads) in enumerate(zip(DEPTHS, HEADS)):
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            x = x + _windows_attention(ln(x, p + "norm1"), sd, p, res, heads, SHIFT if j % 2 and res > WIN else 0)
            h = F.gelu(F.linear(ln(x, p + "norm2"), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
            x = x + F.linear(h, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        if i < 3:
            g = x.view(B, res, res, -1)
            x = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]], -1)
            x = F.linear(ln(x.flatten(1, 2), f"layers.{i}.downsample.norm"),
                         sd[f"layers.{i}.downsample.reduction.weight"])
            res //= 2
    y = ln(x, "norm").mean(1)
    y = bn(F.linear(y, sd["feature.0.weight"]), "feature.1")
    return bn(F.linear(y, sd["feature.2.weight"]), "feature.3")


def _official(backbone: dict) -> dict:
    return {"state_dict_backbone": backbone, "state_dict_fam": {"conv.weight": torch.zeros(1)},
            "state_dict_tss": {"x.weight": torch.zeros(1)}, "state_dict_om": {"y.weight": torch.zeros(1)}}


@pytest.fixture(scope="module")
def swin_reference():
    return swinface_reference_backbone(torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def swinface_model():
    torch.manual_seed(6)
    return create_extractor("swinface", frames=1)


def test_official_swinface_checkpoint_gives_the_reference_embedding(swin_reference, tmp_path):
    torch.save(_official(swin_reference), tmp_path / "checkpoint_step_79999_gpu_0.pt")
    model = create_extractor("swinface", checkpoint=str(tmp_path / "checkpoint_step_79999_gpu_0.pt"), frames=1)
    report = model.checkpoint_report
    assert report.format == "swinface-official" and report.complete
    assert {"head.weight", "head.bias", "layers.0.blocks.1.attn_mask"} <= set(report.dropped)
    faces = torch.randint(0, 256, (2, 1, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    x = (faces[:, 0].permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    expected = reference_embedding(swin_reference, x)
    got = model(faces)["embedding"][:, 0]
    assert expected.abs().max() > 0.5  # a meaningful signal, not a near-zero one
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_swinface_checkpoint_that_does_not_fit_is_refused_by_name(swin_reference, swinface_model, tmp_path):
    cases = {
        "missing": ({k: v for k, v in swin_reference.items() if k != "layers.2.blocks.3.mlp.fc1.weight"},
                    r"state_dict_backbone\.layers\.2\.blocks\.3\.mlp\.fc1\.weight"),
        "unexpected": ({**swin_reference, "layers.0.blocks.0.attn.surprise": torch.zeros(1)},
                       r"state_dict_backbone\.layers\.0\.blocks\.0\.attn\.surprise"),
        # a head of another shape (Linear 768 -> 512 first, as migue once had)
        "shape": ({**swin_reference, "feature.0.weight": torch.zeros(512, 768)}, r"feature\.0\.weight"),
        # windows shifted in the 7x7 stage: another geometry than the reference's
        "geometry": ({**swin_reference, "layers.3.blocks.1.attn_mask": torch.zeros(1, 49, 49)},
                     r"shifts windows"),
    }
    for name, (backbone, pattern) in cases.items():
        torch.save(_official(backbone), tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=pattern):
            swinface_model.load_checkpoint(str(tmp_path / f"{name}.pt"))


def test_swinface_merge_permutation_matches_unfold():
    from migue.extractors.convert_swinface import merge_permutation

    C = 5
    x = torch.randn(1, 4, 4, C)
    reference = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    unfold = F.unfold(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).transpose(1, 2).view(1, 2, 2, 4 * C)
    torch.testing.assert_close(unfold, reference[..., merge_permutation(C)], rtol=0, atol=0)


# ---------------------------------------------------------------- mmaction2 2s-AGCN, layouts
def _recognizer(model: torch.nn.Module, path) -> None:
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state.update({"cls_head.fc.weight": torch.zeros(60, 256), "cls_head.fc.bias": torch.zeros(60)})
    torch.save({"meta": {"epoch": 16}, "state_dict": state}, path)


def test_agcn_checkpoint_of_another_layout_is_refused_with_the_layout_to_use(tmp_path):
    from migue.extractors.agcn import AGCNExtractor

    coco = AGCNExtractor(layout="coco", frames=16)  # the released NTU-60 2D geometry: 2 x 17 x 3
    _recognizer(coco.joint, tmp_path / "joint.pth")
    _recognizer(coco.bone, tmp_path / "bone.pth")
    files = [str(tmp_path / "joint.pth"), str(tmp_path / "bone.pth")]
    ours = AGCNExtractor(layout="imigue22", frames=16)
    with pytest.raises(CheckpointError, match=r"data_bn has 102 channels.*'coco'.*--joints coco"):
        ours.load_checkpoint(files)
    ckpt = torch.load(tmp_path / "joint.pth")
    ckpt["state_dict"]["backbone.A"] = torch.rand_like(ckpt["state_dict"]["backbone.A"])
    torch.save(ckpt, tmp_path / "joint.pth")
    with pytest.raises(CheckpointError, match="graph A differs"):
        coco.load_checkpoint(files)


# ---------------------------------------------------------------- formats and the catalogue
def test_formats_are_detected_and_the_wrong_one_is_refused(tv_checkpoint, swin_reference, mvit_small, tmp_path):
    _, tv = tv_checkpoint
    assert detect_format(tv) == "torchvision-mvit"
    assert detect_format(_official(swin_reference)) == "swinface-official"
    assert detect_format({"meta": {}, "state_dict": {"backbone.x": 0, "cls_head.y": 0}}) == "mmaction2-recognizer"
    assert detect_format({"backbone.x": 0, "feature.0.weight": 0}) == "migue-swinface"
    assert detect_format({"model": {"a": 0}}) == "unknown"
    torch.save(_official({"norm.weight": torch.zeros(768)}), tmp_path / "face.pt")
    with pytest.raises(CheckpointError, match=r"swinface-official.*torchvision-mvit"):
        mvit_small.load_checkpoint(str(tmp_path / "face.pt"))


def test_catalogue_and_local_folder_scan(tmp_path):
    from migue.pipeline.weights import WeightsStore

    names = {w.file_name for w in CATALOGUE}
    assert "mvit_v2_s-ae3be167.pth" in names and "checkpoint_step_79999_gpu_0.pt" in names
    assert {w.extractor for w in CATALOGUE} == {"mvit", "agcn", "swinface"}
    for w in CATALOGUE:  # a prefix is what the publishers' file names carry
        assert w.sha256_prefix is None or w.sha256_prefix in w.file_name
    (tmp_path / "mvit_v2_s-ae3be167.pth").write_bytes(b"not the real file")
    (tmp_path / "checkpoint_step_79999_gpu_0.pt").write_bytes(b"face")
    (tmp_path / "mine.pth").write_bytes(b"x")
    found = {f.path.name: f for f in WeightsStore(tmp_path).files()}
    assert found["mvit_v2_s-ae3be167.pth"].status == "MISMATCH"
    assert found["checkpoint_step_79999_gpu_0.pt"].status == "unknown"  # no hash published
    assert found["mine.pth"].known is None
    digest = found["mine.pth"].sha256
    entry = KnownWeights("k", "mvit", "", "torchvision-mvit", "f", "u", sha256_prefix=digest[:8])
    assert entry.hash_status(digest) == "prefix matches"
    assert KnownWeights("k", "mvit", "", "torchvision-mvit", "f", "u", sha256=digest).hash_status(digest) == "verified"


def test_weights_command_lists_sources_and_flags_a_bad_download(tmp_path):
    from click.testing import CliRunner

    from migue.pipeline.cli import main

    result = CliRunner().invoke(main, ["weights", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth" in result.output
    assert "2s-agcn_8xb16-bone-u100-80e_ntu60-xsub-keypoint-2d_20221222-293878b5.pth" in result.output
    assert "unknown (none published)" in result.output
    (tmp_path / "mvit_v2_s-ae3be167.pth").write_bytes(b"truncated")
    result = CliRunner().invoke(main, ["weights", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "MISMATCH" in result.output
