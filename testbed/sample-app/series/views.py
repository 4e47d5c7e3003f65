from django.db import connection
from django.shortcuts import render

from .models import Serie


def index(request):
    return render(
        request,
        "series/index.html",
        {"count": Serie.objects.count(), "vendor": connection.vendor},
    )
