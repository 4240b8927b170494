"""The pipeline logic both doors call, written once and Ray-free (the Pipeline deployment runs it)."""
