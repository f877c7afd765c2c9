"""``python -m worker`` is the ``leadmail`` command."""

from worker.cli.main import main

main()
