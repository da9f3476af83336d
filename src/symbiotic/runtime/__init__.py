"""Deployment: trained masked models exported to inference-only form, and back from a file.

Shared by every model:

- ``formats``: the three products of a layer (``MATRICES``), their formats (dense or CSR) and
  the one crossover rule that picks them from the hardware profile;
- ``packing``: which copy of a trained model an export reads (thinned or not), CSR and
  block-diagonal packing of its weights;
- ``layers``: what every exported H-LSTM layer keeps and does (buffers, the input half of its
  products, the scripted time loop);
- ``serialise``: exported models as plain tensors for ``torch.load(..., weights_only=True)``,
  and the checked reading back.

One module per model, built only from the public names above: ``lm`` (the PTB language
model) and ``ds2`` (the AN4 DeepSpeech2). A native runtime belongs here too, beside them.
"""
