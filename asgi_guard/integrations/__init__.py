"""Small glue for frameworks: FastAPI dependencies and Litestar handler ``opt`` policies."""
