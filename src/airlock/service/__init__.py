"""The HTTP service: a native API, the seed-compatible API and the review web page, one core."""
