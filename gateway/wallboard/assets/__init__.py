"""The wallboard page's own files (HTML, script, chart, style), served by
gateway.wallboard.routes; a package so they ship as package data."""
