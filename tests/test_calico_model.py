"""The Calico model: trainable budget at full size, tiny forward/backward, CAM/KV-cache consistency, ablations."""

from __future__ import annotations

import pytest
import torch

from calico_baseline.cam import CamDecoderLayer
from calico_baseline.config import CalicoConfig, preset
from calico_baseline.generation import generate, seg_assignments
from calico_baseline.modeling import CalicoForCausalLM

from calico_baseline.testing import synthetic_sample, tiny_setup


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_full_size_trainable_budget_on_meta(capsys):
    with torch.device("meta"):
        model = CalicoForCausalLM(preset("calico-7b"), verbose=True)
    trainable = sum(p.numel() for p in model.trainable_parameters().values())
    total = sum(p.numel() for p in model.parameters())
    assert 27_000_000 <= trainable <= 30_000_000
    assert trainable == 29_190_372  # LoRA 4,194,304 + SAM decoder 4,058,340 + CAMs 12,641,792 + CEM 8,295,936
    assert 0.0025 < trainable / total < 0.0035
    assert "29,190,372" in capsys.readouterr().out
    # frozen: the LLM base weights, lm_head/embeddings, text_hidden_fcs, Q-Former, projection, encoders
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.endswith("lm_head.weight") for n in frozen) and any("embed_tokens" in n for n in frozen)
    assert all(not p.requires_grad for p in model.text_hidden_fcs.parameters())
    assert all(not p.requires_grad for p in model.visual.parameters())
    assert all(not p.requires_grad for p in model.grounding_encoder.image_encoder.parameters())
    assert model.config.visual_tokens_per_image == 32
    assert isinstance(model.llm.model.layers[11], CamDecoderLayer) and isinstance(model.llm.model.layers[22], CamDecoderLayer)


def test_dino_large_budget():
    from calico_baseline.config import DINOV2
    with torch.device("meta"):
        model = CalicoForCausalLM(preset("calico-7b", dino_config=DINOV2["large"]))
    assert sum(p.numel() for p in model.trainable_parameters().values()) == 27_748_580


def batch_of(processor, n=2, train=True):
    return processor.collate([processor(*synthetic_sample(i), train=train) for i in range(n)])


def test_tiny_forward_backward_shapes():
    model, tokenizer, processor = tiny_setup()
    batch = batch_of(processor)
    out = model(**batch)
    B, T = batch["input_ids"].shape
    assert out.logits.shape == (B, T, len(tokenizer))
    assert out.num_masks == 4  # two [SEG] per sample
    assert [tuple(m.shape) for m in out.pred_masks[0]] == [(48, 64), (40, 56)]  # original sizes
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.trainable_parameters().items()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "mask_decoder" in n)
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "linear_out" in n)
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_zero_initialised_cem_and_cam_start_as_the_base_model():
    model, _, processor = tiny_setup()
    batch = batch_of(processor)
    with torch.no_grad():
        with_cam = model(**batch).logits
        embeds, _ = model.prefill_inputs(batch)
        hidden, _ = model.run_llm(embeds, batch["attention_mask"])  # no CAM context
        assert torch.allclose(with_cam, model.llm.lm_head(hidden), atol=1e-6)


def perturb_cams(model):
    with torch.no_grad():
        for cam in model.cams.values():
            cam.linear_in.weight.normal_(std=0.5)
            cam.linear_out.weight.normal_(std=0.5)
        model.cem.attention.out_proj.weight.normal_(std=0.5)


def test_cam_prefill_plus_cached_decoding_equals_full_forward():
    model, tokenizer, processor = tiny_setup()
    perturb_cams(model)
    model.eval()
    row, images = synthetic_sample(0)
    prompt = processor(row, images, train=False)
    full = processor(row, images, train=True)
    batch = processor.collate([full])
    with torch.no_grad():
        full_logits = model(**{k: v for k, v in batch.items() if k not in ("labels",)}).logits[0]
        # the CAM changes the output once it is non-zero
        embeds, _ = model.prefill_inputs(batch)
        plain = model.llm.lm_head(model.run_llm(embeds, batch["attention_mask"])[0])[0]
        assert not torch.allclose(full_logits, plain, atol=1e-4)
        # prefill the prompt (CAM applied), then feed the answer token by token through the KV cache
        p_batch = processor.collate([prompt])
        embeds, context = model.prefill_inputs(p_batch)
        hidden, cache = model.run_llm(embeds, p_batch["attention_mask"], cam_context=context, use_cache=True)
        n = len(prompt["input_ids"])
        steps = [model.llm.lm_head(hidden[0, -1])]
        attention = p_batch["attention_mask"]
        for position, token in enumerate(full["input_ids"][n:-1], start=n):
            attention = torch.cat([attention, torch.ones(1, 1, dtype=attention.dtype)], dim=1)
            emb = model.llm.get_input_embeddings()(torch.tensor([[token]]))
            hidden, cache = model.run_llm(emb, attention, torch.tensor([[position]]), cache=cache, use_cache=True)
            steps.append(model.llm.lm_head(hidden[0, -1]))
    assert torch.allclose(torch.stack(steps), full_logits[n - 1 : -1], atol=1e-4)


def test_batched_left_padded_generation_matches_single():
    model, tokenizer, processor = tiny_setup()
    perturb_cams(model)
    model.eval()
    rows = [synthetic_sample(i) for i in range(2)]
    rows[1][0]["question"] = "Which object do the two images share, if any?"  # different prompt length
    feats = [processor(r, im, train=False) for r, im in rows]
    both, _ = generate(model, processor.collate(feats), max_new_tokens=6)
    one, _ = generate(model, processor.collate(feats[1:]), max_new_tokens=6)
    assert both[1] == one[0]


@pytest.mark.parametrize("overrides", [
    {"use_qformer": False, "use_cam": False},
    {"use_dino": False},
    {"use_cem": False},
    {"use_cam": False},
    {"cam_layers": [2]},
    {"cem_joint": True},
    {"mask_loss": "bce"},
])
def test_ablations_build_and_train(overrides):
    model, _, processor = tiny_setup(**overrides)
    out = model(**batch_of(processor))
    out.loss.backward()
    config = model.config
    assert hasattr(model, "dino") == (config.use_dino and config.use_cem and config.use_cam)
    assert hasattr(model, "cams") == config.use_cam
    if not config.use_qformer:
        assert all(p.requires_grad for p in model.visual.mm_projector.parameters())


def test_invalid_switches_are_refused():
    with pytest.raises(ValueError, match="use_cam needs use_qformer"):
        CalicoConfig(use_qformer=False)
    with pytest.raises(ValueError, match="cam_layers"):
        CalicoConfig(cam_layers=[40])
    with pytest.raises(ValueError, match="mask_loss"):
        CalicoConfig(mask_loss="l2")


def test_config_round_trip(tmp_path):
    config = preset("calico-tiny", cam_layers=[0, 2], use_dino=False)
    config.save_pretrained(tmp_path)
    again = CalicoConfig.from_pretrained(tmp_path)
    assert again.cam_layers == [0, 2] and again.use_dino is False and again.text_config == config.text_config


def test_seg_assignments():
    text = "The images show <p> a dog </p> [SEG] (IMAGE1) [SEG] (IMAGE2). Parts: <p> the tail </p> [SEG] (IMAGE5) [SEG]"
    assert seg_assignments(text, 2) == [("dog", 0), ("dog", 1), ("tail", 0), ("tail", 0)]
    assert seg_assignments("[SEG] (IMAGE2)", 2) == [("", 1)]


def test_phrase_token_weight_weights_the_names_between_the_markers():
    import torch.nn.functional as F

    from calico_baseline.modeling import phrase_tokens, weighted_text_loss

    open_id, close_id = 5, 6
    labels = torch.tensor([[-100, 1, open_id, 7, 8, close_id, 9, open_id, 3, close_id, -100]])
    assert phrase_tokens(labels, open_id, close_id).tolist() == [
        [False, False, False, True, True, False, False, False, True, False, False]]
    logits = torch.randn(1, labels.shape[1], 12)
    plain = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    same = CalicoConfig(phrase_token_weight=1.0, phrase_token_ids=[open_id, close_id])
    assert all(torch.allclose(loss, plain) for loss in weighted_text_loss(logits, labels, same))
    heavy = CalicoConfig(phrase_token_weight=3.0, phrase_token_ids=[open_id, close_id])
    per_token = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="none")
    weights = torch.tensor([1, 1, 3, 3, 1, 1, 1, 3, 1, 0.0])  # targets are labels shifted by one
    weighted, logged = weighted_text_loss(logits, labels, heavy)
    assert torch.allclose(weighted, (per_token * weights).sum() / weights.sum())
    assert torch.allclose(logged, plain)  # ce_loss stays the plain mean, whatever the weight
    with pytest.raises(ValueError, match="phrase_token_ids"):
        CalicoConfig(phrase_token_weight=2.0)
