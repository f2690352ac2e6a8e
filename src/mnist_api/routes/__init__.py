"""HTTP routes: the v1 API, the original /upload, health and metrics, and the web page."""
