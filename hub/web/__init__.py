"""The hall's web console: FastAPI, server-rendered pages and the JSON API (README "Web console").

Adding a page group: write a router module (as hub/web/pages.py), each route taking
`caller: Annotated[Principal, Depends(require(Right.X))]` and answering
`render(request, "x.html", caller, ...)` with a template that extends `base.html`; include the router in
`create_app` (hub/web/app.py) and add its menu entry to `NAV` (hub/web/templating.py). Data comes from
hub/api_objects.py, never from a second copy of a query.
"""
