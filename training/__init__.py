"""callqa.training: datasets, encoder + heads, the training loop, evaluation, distillation and export. Imports torch;
may import the core (``callqa.*``), never ``callqa.serving``."""
