"""The live web dashboard (``tradewatch dashboard``): a Panel app over the read models.

* :mod:`ui.dashboard.data` builds the page's data from the read models only, on one
  database thread, cached on the read models' position.
* :mod:`ui.dashboard.charts` draws the Bokeh charts.
* :mod:`ui.dashboard.view` lays out one browser session and keeps it live.
* :mod:`ui.dashboard.server` serves it: authentication, cookie secret, offline resources.
"""

from ui.dashboard.server import DashboardError, access, serve

__all__ = ["DashboardError", "access", "serve"]
