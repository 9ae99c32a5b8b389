"""Stage 5, resolve: settle targets chosen by several sources into links."""
