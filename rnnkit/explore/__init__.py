"""``rnnkit explore``: a local web app to look inside a trained language model.

:class:`~rnnkit.explore.analysis.ExploreRun` computes what the views show from the layers'
internals; :func:`~rnnkit.explore.server.create_app` is the Starlette application.
"""
