"""The dialogue seq2seq model: batching, the pointer-generator network and safe checkpoints."""

from chatbot.model.batch import Example, Seq2SeqBatch, collate, encode_pair
from chatbot.model.checkpoint import CheckpointError, LoadedModel, load_checkpoint, save_checkpoint
from chatbot.model.seq2seq import DecoderState, Seq2Seq, Seq2SeqConfig

__all__ = [
    "CheckpointError",
    "DecoderState",
    "Example",
    "LoadedModel",
    "Seq2Seq",
    "Seq2SeqBatch",
    "Seq2SeqConfig",
    "collate",
    "encode_pair",
    "load_checkpoint",
    "save_checkpoint",
]
