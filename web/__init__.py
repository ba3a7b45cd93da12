"""The web layer: FastAPI app with the REST API and the Gradio customer, agent and admin pages."""

from web.app import create_app

__all__ = ["create_app"]
