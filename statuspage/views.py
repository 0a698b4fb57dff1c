from django.http import HttpResponse


def status_page(request):
    return HttpResponse("")


incident_detail = history = robots_txt = status_page
