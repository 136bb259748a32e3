"""Server-rendered pages: public web forms (and, later, the dashboard)."""
