"""``python -m tinygrad_edu COMMAND ...``: the command line of ``tinygrad_edu.cli``."""

from tinygrad_edu.cli import main

raise SystemExit(main())
