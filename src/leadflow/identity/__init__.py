"""Identity: recognise a lead that already exists."""
