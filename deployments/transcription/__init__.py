"""Speech-to-text stage: the Ray-free `Transcriber` (faster-whisper) and its Serve deployment."""
