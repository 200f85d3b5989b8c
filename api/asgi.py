"""Production entry point: `uvicorn api.asgi:app` (what `vaxvault serve --workers N` runs)."""

from api.app import create_app
from api.settings import load_settings

app = create_app(load_settings())
