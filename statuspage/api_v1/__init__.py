"""Management API v1, compatible with Statuspage's (see docs/api-v1.md).

`api` is the NinjaAPI: the pydantic schemas that validate each request, and those in
schemas.py that each response is validated against, also write the OpenAPI document at
/api/v1/openapi.json and the browsable docs at /api/v1/docs.
"""
