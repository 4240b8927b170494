"""The ZMQ door: the chat gateway's PULL/PUB protocol (PROTOCOL.md §1-2), laid out like vLLM's entrypoints.

`server` owns the sockets and the receive loop, `router` the one table from message type to
(request model, handler, error events, reply), `serving_*` one module per family of handlers,
`protocol` the wire models, `deployment` the Serve deployment. No pipeline logic lives here: a
handler maps a request onto `VoicePipeline` calls and renders the results into PROTOCOL.md's events.
"""
