"""The path that matters most during an outage: staff post, the public page shows it."""

from components.models import ComponentStatus
from tests.components.factories import ComponentFactory


def test_an_incident_a_responder_posts_is_on_the_public_page_at_once(
    client, page, responder, django_capture_on_commit_callbacks, django_assert_num_queries
):
    chat = ComponentFactory(name="Web chat")
    with django_capture_on_commit_callbacks(execute=True):
        client.get("/")  # warm the public cache
    with django_assert_num_queries(0):
        assert "All Systems Operational" in client.get("/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/incidents/incident/add/",
            {
                "name": "Chat does not load",
                "status": "investigating",
                "body": "We are investigating **chat** failures.",
                "deliver_notifications": "on",
                f"component_{chat.pk}": ComponentStatus.MAJOR_OUTAGE,
            },
        )
    assert response.status_code == 302

    html = client.get("/").content.decode()
    assert "Chat does not load" in html
    assert "We are investigating <strong>chat</strong> failures." in html
    assert "Major System Outage" in html
    live = client.get("/", headers={"HX-Request": "true"}).content.decode()
    assert "Chat does not load" in live
