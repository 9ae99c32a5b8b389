"""Stage 2, select: rank each graph's predicates and build the profile each entity shows."""
