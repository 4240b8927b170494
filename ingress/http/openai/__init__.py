"""The OpenAI-compatible door under `/v1`: protocol (wire models), serving_* (pipeline results into
OpenAI's shapes), routes (the APIRouter)."""
