"""Background tasks on a Celery task queue with a Redis broker (factor VIII): the option.

A todo gains an `archived_at` column (data_model.py), set by the archive task (tasks.py); the
service gains the broker's settings (settings.py); the web app gains
POST /api/todos/<id>/archive (routes.py) and a Redis readiness check (celery_app.py); the
worker process type runs the tasks (worker.py). option.py is what the core calls.
"""
