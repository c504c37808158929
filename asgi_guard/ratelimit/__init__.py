"""Rate limiting: exact per-route limits in memory, on Redis or a Redis Cluster.

``keys`` turns a request into a counter key; ``windows`` holds the strategies' arithmetic;
``memory`` and ``redis`` count (one atomic step per decision); ``breaker`` handles a failing
storage; ``parse`` reads limit strings; ``fields`` merges the RateLimit fields of several layers; ``middleware`` is the layer.
"""

from .memory import MemoryCounters
from .middleware import RateLimitMiddleware
from .parse import parse_limit

__all__ = ["MemoryCounters", "RateLimitMiddleware", "parse_limit"]
