"""The management API's routes, gathered on the one NinjaAPI instance."""

from statuspage.api_v1 import components, incidents, pages, subscribers
from statuspage.api_v1.base import api

api.add_router("/pages", pages.router, tags=["Pages"])
api.add_router("/pages", components.router, tags=["Components"])
api.add_router("/pages", incidents.router, tags=["Incidents"])
api.add_router("/pages", subscribers.router, tags=["Subscribers"])
