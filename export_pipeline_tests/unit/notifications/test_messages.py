"""Rendering a message: the title stays one line whatever its values hold."""

from export_pipeline.notifications.messages import render_title


def test_a_title_whose_value_spans_lines_is_rendered_on_one_line():
    error = "request.csvFormat.columns[1].fetchValue: unknown measure 'a'\r\nrequest.x: bad\n"
    title = render_title("{{name}} failed: {{error}}", {"name": "daily", "error": error})
    assert title == "daily failed: request.csvFormat.columns[1].fetchValue: unknown measure 'a' request.x: bad"
    assert render_title("{{name}}\tready\u2028", {"name": "a"}) == "a ready"
