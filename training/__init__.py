"""callqa.training: datasets, encoder + heads, the training loop, evaluation and export. Imports torch."""
