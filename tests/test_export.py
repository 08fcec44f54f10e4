"""`python -m studio.export marvis`: ONNX graphs of the tiny CSM stand-in, checked against PyTorch, and variants."""

import json

import numpy as np
import onnx
import pytest
import torch

from studio.engines.marvis.export import GRAPHS, LOGITS_TOLERANCE, Layout, OnnxMarvis, main


@pytest.fixture(scope="module")
def exported(marvis_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("marvis-onnx")
    status = main(["marvis", "--out", str(out), "--model", str(marvis_dir)])
    return out, status


def test_export_writes_every_graph_and_passes_its_checks(exported):
    out, status = exported
    assert status == 0
    config = json.loads((out / "config.json").read_text())
    check = config["check"]
    assert check["passed"] and check["codes_identical"] and check["frames"] > 0
    assert check["backbone_logits"] <= LOGITS_TOLERANCE and check["depth_logits"] <= LOGITS_TOLERANCE
    assert check["audio"] <= 1e-4
    assert config["num_codebooks"] == 32 and config["frame_rate"] == 12.5 and config["source_fingerprint"]
    for name in GRAPHS:
        for suffix in ("", "_quantized", "_q4"):
            assert (out / "onnx" / f"{name}{suffix}.onnx").is_file()


def test_backbone_and_depth_graphs_carry_their_cache_explicitly(exported):
    out, _ = exported
    backbone = onnx.load(out / "onnx" / "backbone.onnx", load_external_data=False)
    inputs = [i.name for i in backbone.graph.input]
    outputs = [o.name for o in backbone.graph.output]
    assert inputs[:2] == ["inputs_embeds", "position_ids"] and inputs[2:4] == ["past_key_values.0.key",
                                                                                "past_key_values.0.value"]
    assert outputs[:2] == ["logits", "last_hidden_state"] and outputs[2] == "present.0.key"
    depth = onnx.load(out / "onnx" / "depth_decoder.onnx", load_external_data=False)
    assert [i.name for i in depth.graph.input][:3] == ["input_ids", "backbone_hidden", "cache_position"]


def test_smaller_variants_are_quantized_and_still_run(exported):
    out, _ = exported
    ops = {suffix: {node.op_type for node in onnx.load(out / "onnx" / f"backbone{suffix}.onnx").graph.node}
           for suffix in ("_quantized", "_q4")}
    assert "MatMulInteger" in ops["_quantized"] and "MatMulNBits" in ops["_q4"]
    sizes = {suffix: (out / "onnx" / f"backbone{suffix}.onnx").stat().st_size for suffix in ("", "_quantized", "_q4")}
    assert sizes["_q4"] < sizes["_quantized"] < sizes[""]
    config = json.loads((out / "config.json").read_text())
    layout = Layout(**{k: v for k, v in config.items() if k != "check"})
    embeds = np.random.default_rng(0).normal(size=(1, 6, layout.backbone_hidden)).astype(np.float32)
    for suffix in ("_quantized", "_q4"):
        past = [np.zeros((1, layout.backbone_kv_heads, 0, layout.backbone_head_dim), np.float32)
                for _ in range(2 * layout.backbone_layers)]
        logits, hidden, present = OnnxMarvis(out / "onnx", layout, suffix).backbone(embeds, 0, past)
        assert logits.shape == (1, layout.vocab_size) and np.isfinite(logits).all() and present[0].shape[2] == 6
        assert 0 < config["check"]["variants"][suffix] < 1.0  # smaller, not equal: reported, never hidden


def test_a_folder_that_is_not_marvis_is_refused_with_a_message(tmp_path, capsys, marvis_dir):
    assert main(["marvis", "--out", str(tmp_path / "out"), "--model", str(tmp_path)]) == 2
    assert "is not a Marvis (CSM) model folder" in capsys.readouterr().err
    (tmp_path / "clip.wav").write_bytes(b"RIFF not audio")
    assert main(["marvis", "--out", str(tmp_path / "out"), "--model", str(marvis_dir), "--reference",
                 str(tmp_path / "clip.wav")]) == 2
    assert "could not be decoded as audio" in capsys.readouterr().err


def test_the_browsers_prefill_is_the_servers(settings, ja_clips):
    """The voice's reference turn (embedded once on the server) and a sentence's own ids make the engine's prefill."""
    from studio import audio
    from studio.engines import create_engine
    from studio.engines.marvis.export import prefill_embeds, prefix_embeds, text_ids

    engine = create_engine(settings, "marvis")
    engine.load()
    entry = ja_clips[0]
    prompt = engine.make_prompt(audio.load(entry["path"]), entry["text"], "icl")
    text = "A sentence to speak."
    prefix = prefix_embeds(engine, prompt)
    ids = torch.tensor([text_ids(engine, text)])
    joined = torch.cat([prefix, engine.csm.embed_text_tokens(ids).detach()], dim=1)
    assert torch.equal(joined, prefill_embeds(engine, prompt, text))
