"""Stage 3, retrieve: candidates per source entity (TF-IDF, embeddings with FAISS, neighbours, the cascade)."""
