"""PostgreSQL backend (``pip install 'perdure[postgres]'``): scale-out across hosts."""
