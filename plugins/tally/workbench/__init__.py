"""The finance workbench: a FastAPI app (`app.create_app(settings)`) with Jinja2 templates in
templates/ and static files in static/ (vendored libraries in static/vendor/, see VENDORED.md).
`tally web` serves it on its own; Airflow's API server mounts it under /tally
(plugins/tally_workbench_plugin.py)."""
