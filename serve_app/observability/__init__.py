"""What the service tells its operators: metrics (declared once, Ray-free) and structured-log context."""
