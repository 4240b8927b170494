"""Who may call and how often: API keys and principals, rate limits, outbound-request guards (SECURITY.md)."""
