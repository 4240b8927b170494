"""A client of a running service over HTTP: what `voice-translator translate|transcribe|say` use.
Ray-free and door-free: it speaks the HTTP API like any other caller."""
