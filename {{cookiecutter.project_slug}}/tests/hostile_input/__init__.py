"""Hostile input, class by class, sent to the real web process over raw sockets (an HTTP
client would refuse to send most of it): each request is refused with a 4xx, changes nothing,
and leaves the service serving as before.

Where gunicorn's parser refuses a request (bytes that are not HTTP), the app never sees it and
gunicorn answers on its own, with the problem document web_server/answers.py gives it; every other
refusal is the app's.
"""
