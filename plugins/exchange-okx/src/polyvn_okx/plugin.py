"""Hook implementations of the OKX plugin."""
