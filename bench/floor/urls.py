import json

from django.db import connection
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from . import TABLE


class FloorApi(APIView):
    """The least an HTTP API that logs can do: parse the JSON, insert one row, answer with its id."""

    def post(self, request):
        features = request.data["features"]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {TABLE} (created_at, features) VALUES (now(), %s) RETURNING id", [json.dumps(features)]
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id})


urlpatterns = [path("floor/", FloorApi.as_view())]
