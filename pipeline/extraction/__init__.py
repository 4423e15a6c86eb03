"""Stage one: the modality table, turning units into model inputs, and the extraction loop."""
