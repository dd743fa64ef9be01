"""HTTP API for other systems, under ``/api/v1/``: token-authenticated reading of one page's boxes.

The contract (fields, coordinates, answers, errors) is documented in :mod:`grader.api.views`; tokens
are made with ``manage.py api_token USERNAME --name NAME`` or in the admin (:mod:`grader.api.models`).
"""
