"""Voice cloning stage: convert synthesised speech toward the sender's voice (no Ray here)."""

from .speaker import SpeakerEncoder
from .voice_cloner import ConvertedSpeech, VoiceCloner

__all__ = ["ConvertedSpeech", "SpeakerEncoder", "VoiceCloner"]
