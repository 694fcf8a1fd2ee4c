"""Search: one SearchService behind two thin HTTP adapters (Flask locally, FastAPI on Lambda)."""
