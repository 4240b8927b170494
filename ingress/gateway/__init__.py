"""The ZMQ door: the chat gateway's PULL/PUB protocol (PROTOCOL.md §1-2), its wire models in `protocol`."""
