"""Serving trained models over HTTP (`nanofm serve`): a FastAPI app on uvicorn built on the predictors of
nanofm.load, with batching of concurrent requests (batching.py), limits (limits.py, guard.py), Prometheus
metrics (metrics.py) and a self-contained page to try every model (page.py). Nothing is imported here, so
that the CLI can read the limits' defaults without loading torch.

    from nanofm.serve.app import create_app
    from nanofm.serve.models import load_served
    app = create_app(load_served(["runs/bert", "runs/vit"]))   # an ASGI app: uvicorn.run(app)
"""
