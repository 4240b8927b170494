"""Voice cloning stage: convert synthesised speech toward the sender's voice (no Ray here)."""

from .speaker import SpeakerEncoder, SpeakerReference, cosine, embedding_from_bytes
from .voice_cloner import ConvertedSpeech, VoiceCloner

__all__ = [
    "ConvertedSpeech",
    "SpeakerEncoder",
    "SpeakerReference",
    "VoiceCloner",
    "cosine",
    "embedding_from_bytes",
]
