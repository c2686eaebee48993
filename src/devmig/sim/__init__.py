"""A simulated host: the kernel interfaces devmig uses, with reference vendor drivers behind them."""
