"""Done / total with an ETA for slow loops (sweep trials, backtested strategies): a tqdm bar on a
terminal, one log line per finished item otherwise (log files, CI, Hydra's job logs)."""

from __future__ import annotations

import logging
import sys
import time


def eta_seconds(elapsed: float, done: int, remaining: int) -> float:
    """Seconds left at the pace so far: ``elapsed / done * remaining`` (NaN before anything is done)."""
    return elapsed / done * remaining if done > 0 else float("nan")


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """``update(summary)`` once per finished item. ``initial`` items were done before (a resumed
    sweep): they count toward ``total`` but not toward the pace. ``bar``: None picks a bar when
    stderr is a terminal. A single item (``total <= 1``) reports nothing. Use as a context manager
    (closes the bar; log lines go around it)."""

    def __init__(self, total: int, what: str, log: logging.Logger, initial: int = 0, bar: bool | None = None):
        self.total, self.what, self.log = total, what, log
        self.initial = self.done = initial
        self.start = time.perf_counter()
        self.bar = None
        self._redirect = None
        self.quiet = total <= 1
        if not self.quiet and (bar if bar is not None else sys.stderr.isatty()):
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = tqdm(total=total, initial=initial, desc=what, unit="", dynamic_ncols=True)
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()

    def update(self, summary: str = "") -> None:
        self.done += 1
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(summary, refresh=False)
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.start
        eta = eta_seconds(elapsed, self.done - self.initial, self.total - self.done)
        self.log.info("%s %d/%d done%s, elapsed %s, ETA %s", self.what, self.done, self.total,
                      f": {summary}" if summary else "", duration(elapsed), duration(eta))

    def close(self) -> None:
        if self.bar is not None:
            self._redirect.__exit__(None, None, None)
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
