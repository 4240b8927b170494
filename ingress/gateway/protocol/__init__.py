"""The ZMQ wire models: what the gateway pushes (`requests`) and what we publish back (`events`).

They live with the door because nothing else speaks this protocol; the HTTP door has its own.
"""
