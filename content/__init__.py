"""Content: the best-practice library and the email/in-app templates campaigns render."""
