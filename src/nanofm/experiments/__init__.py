"""The experiments a user runs to see the lecture's claims: the translation comparison, the BETO, vision and
text-to-image tables, label curves, and the demo that runs them all within a budget ("benchmark" in bench/ means
speed runs)."""
