"""The RQ queue of the embedded default, which starts the embedded redis-server first.

django-rq builds every connection from the queue's URL and takes no connection
class, so the start hooks into the queue: every RQ door (an enqueue, a worker,
the dashboard) makes its queue before its first command. settings.RQ_QUEUES names
this class only when REDIS_URL is unset; settings cannot import it (django_rq
reads settings at import), hence a module of its own.
"""

from pathlib import Path

from django_rq.queues import DjangoRQ

from . import embedded_redis


class EmbeddedRedisQueue(DjangoRQ):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        socket = self.connection.connection_pool.connection_kwargs["path"]
        embedded_redis.start(Path(socket).parent)
