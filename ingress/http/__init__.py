"""The HTTP door: FastAPI routes behind `@serve.ingress`, its wire models in `protocol`."""
