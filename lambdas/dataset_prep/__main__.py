"""``python -m lambdas.dataset_prep``: see :mod:`.cli`."""

from .cli import main

raise SystemExit(main())
