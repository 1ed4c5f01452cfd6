"""Image intake: base64 -> validated BGR pixels, per api.md §2.1 and its error table."""
