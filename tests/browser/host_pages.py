"""A customer's web app on another origin than Northstar, serving pages that embed the widget.

The browser tests serve these pages from `http://localhost:<port>` while the app runs on
`http://127.0.0.1:<port>`, so every widget request is a real cross-origin request with CORS."""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from web.embed import STUB

NONCE = "host-page-nonce"


# The host's own look: a plain SaaS screen behind the survey, so screenshots show it in context.
HOST_CSS = """
body { margin: 0; font: 15px/1.5 Georgia, serif; color: #222; background: #f3f1ec; }
.nav { display: flex; gap: 24px; align-items: center; padding: 14px 28px; background: #14352b; color: #fff; }
.nav b { font-size: 18px; } .nav span { opacity: .8; }
main { max-width: 1040px; margin: 28px auto; padding: 0 20px; }
h1 { font-size: 28px; margin: 0 0 16px; }
table { width: 100%; border-collapse: collapse; background: #fff; }
td, th { padding: 12px 14px; border-bottom: 1px solid #e4e0d8; text-align: left; }
#open { margin: 18px 0; padding: 10px 16px; }
"""

# What a careless host stylesheet does to everything it can reach.
HOSTILE_CSS = """
* { all: unset !important; }
html { font-size: 40px !important; line-height: 3 !important; }
button { display: none !important; }
div, p, span, label, input, fieldset { font-size: 40px !important; color: red !important; }
[data-northstar] { display: none !important; position: static !important; }
"""


def host_page(
    app_url: str,
    *,
    token: str | None,
    show: str | None = '"outcomes"',
    css: str = HOST_CSS,
    lang: str = "en",
    workspace: str = "default",
    strict_csp: bool = False,
) -> str:
    """A host page that identifies the user and calls `Northstar.show(<show>)` (unless None) as it
    loads, typically before the async widget script has run (the stub queues the calls)."""
    identify = f"Northstar.identify({{token: {json.dumps(token)}}});" if token else ""
    script_src = html.escape(f"{app_url}/embed/v1/widget.js")
    # The strict policy a security-minded host sends: no inline style or script without its nonce.
    csp = (
        f"default-src 'none'; script-src 'nonce-{NONCE}' {app_url}; style-src 'nonce-{NONCE}'; "
        f"connect-src {app_url}; frame-src {app_url}"
    )
    meta = f'<meta http-equiv="Content-Security-Policy" content="{csp}">' if strict_csp else ""
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{meta}
<title>Acme Hiring</title>
<style nonce="{NONCE}">{css}</style>
<script nonce="{NONCE}">{STUB}
{identify}
window.result = null;
window.showSurvey = function (key, options) {{
  return Northstar.show(key, options).then(function (r) {{ window.result = r; return r; }});
}};
</script>
<script src="{script_src}" data-workspace="{html.escape(workspace)}" async></script>
</head>
<body>
<div class="nav"><b>Acme Hiring</b><span>Jobs</span><span>Candidates</span><span>Reports</span></div>
<main>
<h1>Open roles</h1>
<button id="open" type="button">Plan our success</button>
<table>
<tr><th>Role</th><th>Location</th><th>Applicants</th><th>Open for</th></tr>
<tr><td>Store manager</td><td>Leeds</td><td>18</td><td>21 days</td></tr>
<tr><td>Delivery driver</td><td>Bristol</td><td>42</td><td>9 days</td></tr>
<tr><td>Field technician</td><td>Glasgow</td><td>7</td><td>34 days</td></tr>
<tr><td>Team lead, warehouse</td><td>Derby</td><td>11</td><td>15 days</td></tr>
</table>
</main>
<script nonce="{NONCE}">
document.getElementById("open").addEventListener("click", function () {{ showSurvey("outcomes"); }});
{f"showSurvey({show});" if show else ""}
</script>
</body>
</html>"""


class HostSite:
    """A tiny threaded web server for host pages: `add(path, html)` then open `url(path)`."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # "localhost", not 127.0.0.1: another origin than the app, on the same machine.
        self.origin = f"http://localhost:{self.server.server_port}"

    def add(self, path: str, body: str) -> str:
        self.pages[path] = body
        return self.url(path)

    def url(self, path: str) -> str:
        return self.origin + path


@contextmanager
def serving() -> Iterator[HostSite]:
    site = HostSite()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        thread.join(timeout=5)
