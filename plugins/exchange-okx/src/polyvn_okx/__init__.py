"""polyvn exchange plugin for OKX (API v5)."""
