"""
Serve a small Flask (WSGI) app from inside the proxy.

mitmproxy's examples/addons/wsgi-flask-app.py with only the import changed. Requests
for http://example.com/ (port 80) are answered by the app and never leave the proxy:

    twistd -n mitm -s examples/wsgi_flask_app.py
    curl -x http://127.0.0.1:8080 http://example.com/

Flask is not a dependency of twisted_mitm: `pip install flask` to run this one.
"""

from flask import Flask

from twisted_mitm.addons import asgiapp

app = Flask("proxapp")


@app.route("/")
def hello_world() -> str:
    return "Hello World!"


addons = [
    # The app answers every request for example.com on port 80.
    asgiapp.WSGIApp(app, "example.com", 80),
    # HTTPS works too, on port 443. Run the proxy with --set connection_strategy=lazy so
    # that it never tries to connect to example.com itself.
    # asgiapp.WSGIApp(app, "example.com", 443),
]
