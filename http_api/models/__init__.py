"""The API's shapes, stated once: request bodies, query strings and headers (pydantic models that
validate what the resources read) and the answers (TypedDicts the code builds and the OpenAPI
document describes)."""
