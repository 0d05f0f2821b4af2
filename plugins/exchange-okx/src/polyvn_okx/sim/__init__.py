"""A simulator of OKX's v5 REST and WebSocket API over polyvn.sim."""
