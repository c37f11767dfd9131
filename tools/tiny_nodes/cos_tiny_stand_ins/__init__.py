"""Test stand-ins for the Chain-of-Steps runner's ``--tiny`` mode. NOT for real use.

The umt5-xxl text encoder of Wan and the Gemma 3 12B encoder of LTX-2 cannot be made tiny
(COMFYUI_NOTES §8.1: their sizes are fixed by ComfyUI's configs), so a tiny end-to-end run of a
shipped workflow replaces each ``CLIPTextEncode`` with a stand-in: ``CoSTinyTextEncode`` (fed by
CLIPLoader: a deterministic random CONDITIONING of Wan's shape) or ``CoSTinyLTXTextEncode`` (fed by
LTXAVTextEncoderLoader: an already processed LTX-2.3 context of the tiny LTX-2.3 checkpoint's width,
``tools/tiny.py`` ``LTX23_CONTEXT_WIDTH``, with Gemma's integer attention mask), both seeded from
the text. They carry no meaning; the pictures a tiny run makes are noise from random-weight models.

This folder is not part of the node pack ComfyUI Manager installs: only ``tools/cos_run.py``
loads it, through the ``custom_nodes:`` entry of the extra-model-paths YAML it writes for the
ComfyUI server it starts.
"""
from __future__ import annotations

import hashlib

import torch
from comfy_api.latest import ComfyExtension, io

TOKENS, WIDTH = 16, 4096  # umt5-xxl: 4096-wide token embeddings (Wan's text_embedding input)
# The tiny LTX-2.3 checkpoint's processed context: video cross-attention width 128 + audio 64, side by side
# (tools/tiny.py LTX23_CONTEXT_WIDTH; ComfyUI's LTXAVModel passes a context of that width on unchanged).
LTX_TOKENS, LTX_WIDTH = 12, 192


def text_seed(text: str) -> int:
    """A seed from the text, stable across processes (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def stand_in_schema(node_id: str, display_name: str, description: str) -> io.Schema:
    """The schema both text-encode stand-ins share: one ``text`` input hashed into a seed, one CONDITIONING."""
    return io.Schema(
        node_id=node_id,
        display_name=display_name,
        category="Chain-of-Steps/testing",
        description=description,
        inputs=[io.String.Input("text", multiline=True, default="",
                                tooltip="Only hashed into a seed; the words have no effect on the result.")],
        outputs=[io.Conditioning.Output(tooltip="Random conditioning, deterministic per text.")],
    )


class CoSTinyTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return stand_in_schema(
            "CoSTinyTextEncode", "CoS Tiny Text Encode (test stand-in)",
            "TEST STAND-IN, not a text encoder: returns random Wan-shaped conditioning "
            f"(1×{TOKENS}×{WIDTH}) seeded from a hash of the text, for tiny random-weight runs "
            "where the real umt5-xxl encoder cannot be used.")

    @classmethod
    def execute(cls, text) -> io.NodeOutput:
        gen = torch.Generator().manual_seed(text_seed(text))
        return io.NodeOutput([[torch.randn(1, TOKENS, WIDTH, generator=gen) * 1.0, {}]])


class CoSTinyLTXTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return stand_in_schema(
            "CoSTinyLTXTextEncode", "CoS Tiny LTX-2.3 Text Encode (test stand-in)",
            "TEST STAND-IN, not a text encoder: returns a random, already processed LTX-2.3 context "
            f"(1×{LTX_TOKENS}×{LTX_WIDTH}, the tiny LTX-2.3 checkpoint's width) with an all-ones "
            "attention mask, seeded from a hash of the text, for tiny random-weight runs where the "
            "real Gemma 3 12B encoder cannot be used.")

    @classmethod
    def execute(cls, text) -> io.NodeOutput:
        gen = torch.Generator().manual_seed(text_seed(text))
        context = torch.randn(1, LTX_TOKENS, LTX_WIDTH, generator=gen)
        # an integer mask, as Gemma's tokenizer gives (a float mask would be taken as an additive bias)
        return io.NodeOutput([[context, {"attention_mask": torch.ones(1, LTX_TOKENS, dtype=torch.long)}]])


class TinyStandIns(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [CoSTinyTextEncode, CoSTinyLTXTextEncode]


async def comfy_entrypoint() -> TinyStandIns:
    return TinyStandIns()
