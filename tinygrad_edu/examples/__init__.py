"""Small runnable examples: ``python -m tinygrad_edu.examples.train_disc``."""
