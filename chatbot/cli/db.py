"""`chatbot db ...` and `chatbot stats` (filled in by the store work)."""
