"""``showo serve``: the web demo. ``server`` builds and launches it, ``ui`` lays out the tabs,
``tasks`` does the work behind them and ``limits`` bounds every input."""
