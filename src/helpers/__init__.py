"""Library code of the land-cover change-detection pipeline (Sefrin, Riese & Keller 2021)."""
