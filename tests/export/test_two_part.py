"""Export of the U2-Netp two-part model: encoder, decoder and the combined FAIRS model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.export.onnx_export import read_metadata
from fairs_sdk.export.two_part import build_fairs_u2, export_combined, export_decoder, export_image_encoder
from fairs_sdk.training.refiner import RefineDecoder

SPEC = InputSpec(input_size=64, relax=10, input_channels=("rgb", "sfg", "positive_clicks", "negative_clicks"))


@pytest.fixture(scope="module")
def trained_decoder():
    torch.manual_seed(0)
    decoder = RefineDecoder(3, width=16)
    for p in decoder.parameters():
        torch.nn.init.normal_(p, 0.0, 0.05)
    return decoder


def test_combined_model_runs_in_the_segmenter_with_click_maps(tmp_path, fake_u2netp, trained_decoder):
    from fairs_sdk import Segmenter

    model = build_fairs_u2(fake_u2netp[0], trained_decoder.state_dict(), SPEC, width=16)
    path, parity = export_combined(model, tmp_path / "u2.onnx")
    assert parity <= 1e-4
    meta = read_metadata(path)
    assert meta.input_spec.input_channels == SPEC.input_channels and meta.extra["part"] == "combined"
    seg = Segmenter(path, warmup=False)
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    points = [(20, 40), (100, 45), (60, 10), (62, 80)]
    plain = seg.segment(image, points)
    clicked = seg.segment(image, points, negative_clicks=[(60, 45)])
    assert plain.probabilities.shape == (90, 120)
    assert not np.allclose(plain.probabilities, clicked.probabilities), "a negative click changed nothing"


def test_decoder_export_parity(tmp_path, trained_decoder):
    path, parity = export_decoder(trained_decoder, SPEC, tmp_path / "decoder.onnx")
    assert parity <= 1e-4 and read_metadata(path).extra["part"] == "decoder"


def test_encoder_export_matches_torch(tmp_path, fake_u2netp):
    path = export_image_encoder(fake_u2netp[0], SPEC, tmp_path / "encoder.onnx")
    assert read_metadata(path).extra["part"] == "image_encoder"


# --------------------------------------------------------------------------- bundle
@pytest.fixture(scope="module")
def bundle(tmp_path_factory, fake_u2netp, trained_decoder):
    from fairs_sdk.export.two_part import export_bundle

    model = build_fairs_u2(fake_u2netp[0], trained_decoder.state_dict(), SPEC, width=16)
    return export_bundle(model, tmp_path_factory.mktemp("bundle"), "u2", extra={"training": "test"})


def test_bundle_writes_three_files_side_by_side(bundle):
    names = [p.name for p in (bundle.combined, bundle.image_encoder, bundle.decoder)]
    assert names == ["u2.onnx", "u2.encoder.onnx", "u2.decoder.onnx"], names
    assert bundle.combined.parent == bundle.image_encoder.parent == bundle.decoder.parent


def test_bundle_parity_of_all_three_files(bundle):
    assert set(bundle.parity) == {"combined", "image_encoder", "decoder"}, bundle.parity
    assert all(diff <= 1e-4 for diff in bundle.parity.values()), f"ONNX Runtime vs PyTorch: {bundle.parity}"


def test_bundle_metadata_names_the_parts_with_their_digests(bundle):
    from fairs_sdk.trt import file_sha256

    meta = read_metadata(bundle.combined)
    assert meta.part == "combined" and meta.parts == {"image_encoder": "u2.encoder.onnx", "decoder": "u2.decoder.onnx"}
    assert meta.part_sha256 == {"image_encoder": file_sha256(bundle.image_encoder), "decoder": file_sha256(bundle.decoder)}
    assert meta.part_paths(bundle.combined) == {"image_encoder": bundle.image_encoder, "decoder": bundle.decoder}
    for path, part in ((bundle.image_encoder, "image_encoder"), (bundle.decoder, "decoder")):
        part_meta = read_metadata(path)
        assert part_meta.part == part and part_meta.parts is None, f"{path.name}: {part_meta.extra}"
        assert part_meta.input_spec == SPEC and part_meta.extra["training"] == "test", f"{path.name}: {part_meta}"


def test_bundle_parts_together_equal_the_combined_file(bundle):
    from fairs_sdk.export.onnx_export import onnxruntime_session

    x = np.concatenate([np.random.default_rng(3).random((2, 3, 64, 64), dtype=np.float32) * 255,
                        np.random.default_rng(4).random((2, 3, 64, 64), dtype=np.float32)], 1)
    (whole,) = onnxruntime_session(bundle.combined).run(None, {"input": x})
    features, saliency = onnxruntime_session(bundle.image_encoder).run(None, {"rgb": x[:, :3]})
    (parts,) = onnxruntime_session(bundle.decoder).run(
        None, {"features": features, "saliency": saliency, "guidance": x[:, 3:]})
    assert np.abs(parts - whole).max() <= 1e-5, f"encoder + decoder differ from the combined graph by {np.abs(parts - whole).max():.2e}"


def test_a_converted_combined_file_runs_whole_not_on_the_fp32_parts(bundle, tmp_path):
    """fp16 / int8 copies of a bundle's combined file, written beside its fp32 parts, must not load those parts."""
    from fairs_sdk import Segmenter
    from fairs_sdk.export.quantize import convert_fp16

    half = convert_fp16(bundle.combined, bundle.combined.with_name("u2_fp16.onnx"))
    meta = read_metadata(half)
    assert meta.parts is None and "part_sha256" not in meta.extra, f"the fp16 copy still names the fp32 parts: {meta.extra}"
    assert not Segmenter(half, warmup=False).two_part, "the fp16 copy ran on the fp32 parts beside it"


@pytest.fixture(scope="module")
def bundle_crops(coco_dir) -> np.ndarray:
    from fairs_sdk.export.samples import stack_inputs

    return stack_inputs(coco_dir, SPEC, count=12, stride=37)


def _two_part_result(path, crops):
    """The Segmenter of ``path`` (which must load its parts) on 3 crops' worth of real images: probabilities."""
    from fairs_sdk import Segmenter
    from fairs_sdk.export.onnx_export import onnxruntime_session

    segmenter = Segmenter(path, warmup=False)
    assert segmenter.two_part, f"{path.name} did not load as a two-part model"
    encoder, decoder = (onnxruntime_session(p) for p in (segmenter.image_encoder.path, segmenter.decoder.path))
    features, saliency = encoder.run(None, {"rgb": crops[:, :3]})
    (probabilities,) = decoder.run(None, {"features": features, "saliency": saliency, "guidance": crops[:, 3:]})
    return probabilities


@pytest.mark.parametrize("precision, mean_limit", [("fp16", 1e-3), ("int8", 2e-2)])
def test_converted_bundle_loads_its_own_parts(bundle, bundle_crops, tmp_path, precision, mean_limit):
    from fairs_sdk.export.quantize import convert_bundle
    from fairs_sdk.trt import file_sha256

    written = convert_bundle(bundle.combined, tmp_path / f"u2_{precision}.onnx", precision, calibration=bundle_crops)
    meta = read_metadata(written["combined"])
    assert meta.precision == precision and meta.parts == {
        "image_encoder": f"u2_{precision}.encoder.onnx", "decoder": f"u2_{precision}.decoder.onnx"}, meta.extra
    assert meta.part_sha256 == {k: file_sha256(written[k]) for k in ("image_encoder", "decoder")}, "part digests"
    assert all(read_metadata(written[k]).precision == precision for k in ("image_encoder", "decoder")), \
        "a part kept fp32"
    test = bundle_crops[-3:]
    diff = np.abs(_two_part_result(written["combined"], test) - _two_part_result(bundle.combined, test))
    assert diff.mean() < mean_limit, f"{precision} parts differ from fp32 by {diff.mean():.3g} on average"


@pytest.mark.parametrize("whole", [False, True], ids=["bundle", "whole"])
def test_quantize_command_converts_a_bundle_with_its_parts(bundle, tmp_path, capsys, whole):
    from fairs_sdk.export.cli import main

    out = tmp_path / "u2_fp16.onnx"
    code = main(["quantize", str(bundle.combined), "--precision", "fp16", "-o", str(out)] + (["--whole"] if whole else []))
    printed = capsys.readouterr().out
    written = sorted(p.name for p in tmp_path.glob("*.onnx"))
    want = ["u2_fp16.onnx"] if whole else ["u2_fp16.decoder.onnx", "u2_fp16.encoder.onnx", "u2_fp16.onnx"]
    assert code == 0 and written == want, f"exit {code}, wrote {written}, want {want}; output: {printed}"
    assert (read_metadata(out).parts is None) == whole, f"--whole {whole}: metadata parts {read_metadata(out).parts}"


@pytest.mark.parametrize("precision, calibration, message", [("bf16", None, "precision"), ("int8", None, "calibration")])
def test_convert_bundle_refuses_what_it_cannot_do(bundle, tmp_path, precision, calibration, message):
    from fairs_sdk.export.quantize import convert_bundle

    with pytest.raises(ValueError, match=message):
        convert_bundle(bundle.combined, tmp_path / "x.onnx", precision, calibration)
    assert not list(tmp_path.iterdir()), "a refused conversion wrote files"


def test_convert_bundle_refuses_a_whole_model(bundle, tmp_path):
    from fairs_sdk.export.quantize import convert_bundle, convert_fp16

    whole = convert_fp16(bundle.combined, tmp_path / "whole.onnx")  # names no parts
    with pytest.raises(ValueError, match="names no parts"):
        convert_bundle(whole, tmp_path / "again.onnx", "fp16")


def test_bundle_stem_must_be_a_file_name(tmp_path, fake_u2netp, trained_decoder):
    from fairs_sdk.export.two_part import export_bundle

    model = build_fairs_u2(fake_u2netp[0], trained_decoder.state_dict(), SPEC, width=16)
    with pytest.raises(ValueError, match="stem"):
        export_bundle(model, tmp_path, "sub/u2")


def test_part_profiles_for_tensorrt_come_from_the_graph():
    from fairs_sdk.export.trt_build import part_profile_shapes

    dims = {"features": (-1, 128, 16, 16), "saliency": (-1, 1, 64, 64), "guidance": (-1, 3, 64, 64)}
    profiles = part_profile_shapes("decoder", dims, "d.onnx", min_batch=1, opt_batch=2, max_batch=8)
    assert profiles["guidance"] == ((1, 3, 64, 64), (2, 3, 64, 64), (8, 3, 64, 64)), profiles
    assert profiles["features"][2] == (8, 128, 16, 16), profiles
    with pytest.raises(ValueError, match="fixed other dimensions"):
        part_profile_shapes("decoder", {**dims, "guidance": (-1, -1, 64, 64)}, "d.onnx")
    with pytest.raises(ValueError, match=r"expected \['rgb'\]"):
        part_profile_shapes("image_encoder", dims, "d.onnx")


def _refine_checkpoint(tmp_path, decoder):
    """A stage-2-like refine checkpoint of ``decoder`` (width 16, SPEC), saved as last.pt."""
    source = {"kind": "folder", "root": "unused", "max_instances": 1}
    config = {"u2netp_weights": "missing.onnx", "output_dir": "run", "input": SPEC.to_dict(), "width": 16,
              "train": [{"name": "t", "source": source}], "val": {"name": "v", "source": source}}
    checkpoint = tmp_path / "last.pt"
    torch.save({"model": decoder.state_dict(), "config": config, "step": 7}, checkpoint)
    return checkpoint


def test_bundle_command_exports_a_refine_checkpoint(tmp_path, fake_u2netp, trained_decoder, capsys):
    from fairs_sdk import Segmenter
    from fairs_sdk.export.cli import main

    checkpoint = _refine_checkpoint(tmp_path, trained_decoder)
    status = main(["bundle", str(checkpoint), "-o", str(tmp_path / "out"), "--stem", "m", "--u2netp", str(fake_u2netp[0])])
    assert status == 0, capsys.readouterr().err
    assert capsys.readouterr().out.count("wrote ") == 3
    meta = read_metadata(tmp_path / "out" / "m.onnx")
    assert meta.extra["step"] == 7 and meta.extra["checkpoint"] == "last.pt", meta.extra
    assert Segmenter(tmp_path / "out" / "m.onnx", warmup=False).two_part


def test_bundle_command_writes_the_crop_settings_into_every_file(tmp_path, fake_u2netp, trained_decoder, capsys):
    from fairs_sdk import Segmenter
    from fairs_sdk.export.cli import main

    checkpoint = _refine_checkpoint(tmp_path, trained_decoder)
    out = tmp_path / "out"
    status = main(["bundle", str(checkpoint), "-o", str(out), "--stem", "m", "--u2netp", str(fake_u2netp[0]),
                   "--relax", "21", "--partial-relax", "0.1", "--partial-relax-sides", "corner"])
    assert status == 0, capsys.readouterr().err
    specs = {name: read_metadata(out / name).input_spec for name in ("m.onnx", "m.encoder.onnx", "m.decoder.onnx")}
    found = {name: (spec.relax, spec.partial_relax, spec.partial_relax_sides) for name, spec in specs.items()}
    assert found == dict.fromkeys(found, (21, 0.1, "corner")), f"(relax, partial_relax, partial_relax_sides) per file: {found}"
    spec = Segmenter(out / "m.onnx", warmup=False).spec
    assert (spec.relax, spec.partial_relax, spec.partial_relax_sides) == (21, 0.1, "corner"), f"the runtime reads {spec}"


def test_bundle_command_refuses_a_negative_partial_relax(tmp_path, trained_decoder, capsys):
    from fairs_sdk.export.cli import main

    checkpoint = _refine_checkpoint(tmp_path, trained_decoder)
    with pytest.raises(SystemExit):
        main(["bundle", str(checkpoint), "-o", str(tmp_path / "out"), "--partial-relax", "-0.1"])
    assert "must be a finite number >= 0" in capsys.readouterr().err


def test_bundle_command_refuses_an_end_to_end_checkpoint(tmp_path, trained_decoder, capsys):
    from fairs_sdk.export.cli import main

    source = {"kind": "folder", "root": "unused"}
    config = {"u2netp_weights": "w.onnx", "output_dir": "run", "input": SPEC.to_dict(), "design": "end_to_end",
              "train": [{"name": "t", "source": source}], "val": {"name": "v", "source": source}}
    torch.save({"model": {}, "config": config, "step": 1}, tmp_path / "e2e.pt")
    assert main(["bundle", str(tmp_path / "e2e.pt"), "-o", str(tmp_path)]) == 2
    assert "needs design 'decoder'" in capsys.readouterr().err


@pytest.mark.parametrize("locality", [False, True], ids=["branch", "branch_with_locality_windows"])
def test_decoder_with_click_similarity_and_branch_exports_with_parity(tmp_path, locality):
    torch.manual_seed(1)
    decoder = RefineDecoder(3, width=16, click_planes=(1, 2), click_branch=True, click_locality=locality)
    for p in decoder.parameters():
        torch.nn.init.normal_(p, 0.0, 0.05)
    path, parity = export_decoder(decoder, SPEC, tmp_path / "decoder.onnx")
    assert parity <= 1e-4, f"click-branch decoder differs from torch by {parity}"


# --------------------------------------------------------------------------- flip averaging
@pytest.fixture(scope="module")
def flip_bundle(tmp_path_factory, fake_u2netp):
    from fairs_sdk.export.two_part import export_bundle

    torch.manual_seed(2)  # a decoder with click similarity, so mirrored clicks must meet mirrored features
    decoder = RefineDecoder(3, width=16, click_planes=(1, 2), click_branch=True, click_locality=True)
    for p in decoder.parameters():
        torch.nn.init.normal_(p, 0.0, 0.05)
    model = build_fairs_u2(fake_u2netp[0], decoder.state_dict(), SPEC, width=16, click_similarity=True,
                           click_branch=True, click_locality=True)
    folder = tmp_path_factory.mktemp("flip")
    plain = export_bundle(model, folder, "plain")
    flipped = export_bundle(model, folder, "flip", flip_average=True)
    return plain, flipped


def _input(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    guidance = rng.random((2, 3, 64, 64), dtype=np.float32)
    guidance[:, 1:] = (guidance[:, 1:] > 0.995).astype(np.float32)  # sparse click planes
    return np.concatenate([rng.random((2, 3, 64, 64), dtype=np.float32) * 255, guidance], 1)


def test_flip_averaged_model_is_the_mean_of_the_crop_and_its_mirror(flip_bundle):
    from fairs_sdk.export.onnx_export import onnxruntime_session

    plain, flipped = flip_bundle
    x = _input(5)
    (averaged,) = onnxruntime_session(flipped.combined).run(None, {"input": x})
    run = onnxruntime_session(plain.combined)
    (straight,) = run.run(None, {"input": x})
    (mirrored,) = run.run(None, {"input": np.ascontiguousarray(x[..., ::-1])})
    want = 0.5 * (straight + mirrored[..., ::-1])
    diff = float(np.abs(averaged - want).max())
    assert diff <= 1e-5, f"flip-averaged output differs from the mean of the two views by {diff:.2e}"
    assert np.abs(straight - want).max() > 1e-3, "the test model is mirror-symmetric: the test would prove nothing"


def test_flip_averaged_parts_together_equal_the_combined_file(flip_bundle):
    from fairs_sdk.export.onnx_export import onnxruntime_session

    _, flipped = flip_bundle
    assert all(d <= 1e-4 for d in flipped.parity.values()), flipped.parity
    assert read_metadata(flipped.combined).extra["flip_average"] is True
    x = _input(6)
    (whole,) = onnxruntime_session(flipped.combined).run(None, {"input": x})
    features, saliency = onnxruntime_session(flipped.image_encoder).run(None, {"rgb": x[:, :3]})
    assert features.shape[1] == 256 and saliency.shape[1] == 2, (features.shape, saliency.shape)
    (parts,) = onnxruntime_session(flipped.decoder).run(
        None, {"features": features, "saliency": saliency, "guidance": x[:, 3:]})
    assert np.abs(parts - whole).max() <= 1e-5, f"parts differ from the combined graph by {np.abs(parts - whole).max():.2e}"


def test_flip_averaged_bundle_session_clicks_equal_segment(flip_bundle):
    from fairs_sdk import Segmenter

    _, flipped = flip_bundle
    seg = Segmenter(flipped.combined, warmup=False)
    assert seg.two_part
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    points = [(20, 40), (100, 45), (60, 10), (62, 80)]
    session = seg.session(image, points)
    clicked = session.add_negative(60, 45)
    direct = seg.segment(image, points, negative_clicks=[(60, 45)])
    diff = float(np.abs(clicked.probabilities - direct.probabilities).max())
    assert diff <= 1e-5, f"session (decoder only) and segment differ by {diff:.2e}"
