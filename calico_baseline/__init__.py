"""The trainable Calico model (EVA-CLIP + DINOv2 -> CEM -> Q-Former -> LLM with CAMs -> SAM decoder).

Not implemented yet: it arrives with its own issue. The package exists so the layout is fixed.
"""
