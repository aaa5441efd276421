"""The trainable Calico model (EVA-CLIP + DINOv2 -> CEM -> Q-Former -> LLM with CAMs -> SAM decoder).

Modules: ``config`` (CalicoConfig, presets calico-7b / calico-tiny), ``vision``, ``cem``, ``cam``, ``sam``,
``losses``, ``modeling`` (CalicoForCausalLM), ``tokenization``, ``data`` (rows -> batches), ``generation``
(KV-cached greedy decoding -> predictions), ``checkpoints`` (GLaMM / BLIP-2 / DINOv2 key maps, trained-parts
save/load), ``train`` (calico-train), ``predict`` (calico-predict), ``testing`` (synthetic samples).
Heavy imports stay in the sub-modules.
"""

__all__ = ["CalicoConfig", "CalicoForCausalLM", "preset"]


def __getattr__(name):
    if name in ("CalicoConfig", "preset"):
        from calico_baseline import config
        return getattr(config, name)
    if name == "CalicoForCausalLM":
        from calico_baseline.modeling import CalicoForCausalLM
        return CalicoForCausalLM
    raise AttributeError(name)
